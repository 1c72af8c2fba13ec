import type { EntitySchema } from '@mikro-orm/core';
import type { z } from 'zod';
import type { Builder } from './builder.ts';
import type { Settings } from './config.ts';
import type { RequestContext, ScopeLoaders, Viewer } from './context.ts';
import type { Route } from './routes.ts';
import type { Runtime } from './runtime.ts';
import type { StoreBackend } from './store/backend.ts';

/** Finds the viewer behind a request's credential (cookie, bearer key, ...); null when it has none of its kind. */
export type CredentialResolver = (request: Request, runtime: Runtime) => Promise<Viewer | null>;

export interface ModuleCommand {
  description: string;
  /** Returns the process exit code. */
  run: (runtime: Runtime, args: string[]) => Promise<number>;
}

export interface ModuleDefinition<Api> {
  /** Unique name; other modules name it in `dependsOn`. */
  name: string;
  /** Modules that must be present and are started first. */
  dependsOn?: readonly string[];
  /** The top-level configuration keys this module owns, each with its zod schema. */
  config?: Record<string, z.ZodType>;
  /** Checks across keys (and what other modules provide) once every slice has parsed; each problem as `path: message`. */
  checkConfig?: (settings: Settings, modules: readonly PorticoModule[]) => string[];
  /**
   * Entities of the system database (identity). Business data has no entities of modules: it goes
   * through the store backend (`runtime.store`), which owns its tables.
   */
  entities?: { system?: EntitySchema[] };
  /** Registers the module's GraphQL types and fields. Called once per process. */
  graphql?: (builder: Builder) => void;
  /** Scope rules this module adds to every request (see `AuthScopes`). */
  authScopes?: (context: RequestContext) => ScopeLoaders;
  /** Tried in module order until one returns a viewer. */
  credentials?: CredentialResolver;
  /**
   * The largest file this module takes in a GraphQL multipart request (e.g. `uploadBlob`). Multipart
   * bodies are held in memory, so the kernel caps files at the largest any module asks for (none: no
   * files at all), and never above the request body limit.
   */
  multipartFileBytes?: (settings: Settings) => number;
  /** Plain HTTP routes, mounted beside /graphql. */
  routes?: readonly Route[];
  /** Runs once the databases are ready, before the server listens. */
  start?: (runtime: Runtime) => Promise<void> | void;
  /**
   * Brings what the module keeps in the store in line with the configuration (index builds) before
   * store operations are served: after `start`, or, when the store did not answer at start, once it
   * does. Use `store`, not `runtime.store`, which refuses until then.
   */
  prepareStore?: (runtime: Runtime, store: StoreBackend) => Promise<void>;
  /** Runs on shutdown, after the server stopped accepting requests, before the databases close. */
  stop?: (runtime: Runtime) => Promise<void> | void;
  /** Subcommands of the `portico` CLI, e.g. `bootstrap`. They get a runtime whose modules were not started. */
  commands?: Record<string, ModuleCommand>;
  /** What dependent modules may use: services, GraphQL refs. */
  api?: Api;
}

export interface PorticoModule<Api = unknown> extends ModuleDefinition<Api> {
  readonly api: Api;
}

export function defineModule<const Api = undefined>(definition: ModuleDefinition<Api>): PorticoModule<Api> {
  if (!/^[a-z][a-z0-9-]*$/.test(definition.name)) {
    throw new Error(`Module name "${definition.name}" must be lower-case letters, digits and dashes`);
  }
  return { ...definition, api: definition.api as Api };
}

/**
 * Checks the module list (unique names, dependencies present) and orders it so
 * that every module comes after the modules it depends on.
 */
export function composeModules(modules: readonly PorticoModule[]): PorticoModule[] {
  const byName = new Map<string, PorticoModule>();
  const problems: string[] = [];
  for (const module of modules) {
    if (byName.has(module.name)) problems.push(`modules: "${module.name}" is listed twice`);
    byName.set(module.name, module);
  }
  for (const module of modules) {
    for (const dependency of module.dependsOn ?? []) {
      if (!byName.has(dependency))
        problems.push(`modules: "${module.name}" depends on missing "${dependency}"`);
    }
  }
  if (problems.length > 0) throw new Error(problems.join('; '));

  const ordered: PorticoModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (module: PorticoModule, path: string[]) => {
    if (state.get(module.name) === 'done') return;
    if (state.get(module.name) === 'visiting') {
      throw new Error(`modules: dependency cycle ${[...path, module.name].join(' -> ')}`);
    }
    state.set(module.name, 'visiting');
    for (const dependency of module.dependsOn ?? []) visit(byName.get(dependency)!, [...path, module.name]);
    state.set(module.name, 'done');
    ordered.push(module);
  };
  for (const module of modules) visit(module, []);
  return ordered;
}
