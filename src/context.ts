import type { SqlEntityManager } from '@mikro-orm/sql';
import type { Logger } from './logger.ts';
import type { Runtime } from './runtime.ts';
import type { Viewer } from './viewer.ts';

/**
 * The scope rules GraphQL fields and HTTP routes can name. The kernel has only
 * `public` (an explicit "no rule needed" marker); modules add theirs by interface merging.
 */
export interface AuthScopes {
  public: boolean;
}

/** What a module returns for its scope rules: a boolean, or a check of the rule's parameter. */
export type ScopeLoaders = {
  [K in keyof AuthScopes]?: AuthScopes[K] extends boolean
    ? boolean | (() => boolean | Promise<boolean>)
    : (param: AuthScopes[K]) => boolean | Promise<boolean>;
};

/** What a request can change in its response besides the body (cookies, mostly). */
export class ResponseControl {
  readonly headers = new Headers();
  setCookie(serialized: string) {
    this.headers.append('set-cookie', serialized);
  }
}

/** One request's context: fixed and small. The database fork is made on first use. */
export interface RequestContext {
  readonly request: Request;
  /** The client's address: the socket's peer, or behind a trusted proxy the forwarded one; null without a socket. */
  readonly ip: string | null;
  /** Who the request acts for; changes (through `setViewer`) when the request itself signs in or out. */
  viewer: Viewer;
  /** After a login or logout inside this request: later fields see the new viewer. */
  setViewer(viewer: Viewer): void;
  readonly runtime: Runtime;
  readonly log: Logger;
  readonly response: ResponseControl;
  readonly db: {
    /** A fork of the system database's EntityManager (identity). Business data: `runtime.store`. */
    readonly system: SqlEntityManager;
  };
}

export function createRequestContext(
  runtime: Runtime,
  request: Request,
  viewer: Viewer,
  ip: string | null,
): RequestContext {
  let system: SqlEntityManager | undefined;
  return {
    request,
    ip,
    viewer,
    // Yoga copies the context's properties into its own object: `this` is that object.
    setViewer(this: RequestContext, next: Viewer) {
      this.viewer = next;
    },
    runtime,
    log: runtime.log,
    response: new ResponseControl(),
    db: {
      get system() {
        system ??= runtime.db.system.em.fork();
        return system;
      },
    },
  };
}
