import type { Plugin } from 'graphql-yoga';
import type { RequestContext } from '../context.ts';
import type { NodeServerContext } from '../server-context.ts';

/** Makes a request's context: its viewer found, its client address read. */
export type MakeRequestContext = (
  request: Request,
  serverContext: NodeServerContext | undefined,
) => Promise<RequestContext>;

interface CacheEntry {
  readonly made: Promise<RequestContext>;
  ready?: RequestContext;
}

/**
 * Each request's context, made once: GraphQL, the plain routes and GraphiQL's gate share it, and
 * the hooks that cannot wait for it (validation, the response) read it once it is made.
 */
export class RequestContextCache {
  readonly #make: MakeRequestContext;
  readonly #entries = new WeakMap<Request, CacheEntry>();

  constructor(make: MakeRequestContext) {
    this.#make = make;
  }

  /** The request's context, made on the first call. */
  of(request: Request, serverContext?: NodeServerContext): Promise<RequestContext> {
    const known = this.#entries.get(request);
    if (known) return known.made;
    const entry: CacheEntry = { made: this.#make(request, serverContext) };
    // Registered before any caller can await `made`, so it runs first: whoever awaited finds it ready.
    // A failure is the awaiting callers' to handle.
    entry.made.then(
      (context) => {
        entry.ready = context;
      },
      () => {},
    );
    this.#entries.set(request, entry);
    return entry.made;
  }

  /** The request's context if it is made by now. */
  ready(request: Request): RequestContext | undefined {
    return this.#entries.get(request)?.ready;
  }
}

export interface RequestContextOptions {
  /** Where each request's context is made and kept. */
  contexts: RequestContextCache;
}

/**
 * Gives GraphQL operations their request's context, and makes it before the body is parsed, so
 * that the credential is checked first: an unavailable database answers 503 before any parsing.
 */
export function useRequestContext({ contexts }: RequestContextOptions): Plugin<RequestContext> {
  return {
    async onRequestParse({ request, serverContext }) {
      await contexts.of(request, serverContext as NodeServerContext | undefined);
    },
    async onContextBuilding({ context, extendContext }) {
      const { request, req } = context as { request: Request } & NodeServerContext;
      extendContext(await contexts.of(request, { req }));
    },
  };
}
