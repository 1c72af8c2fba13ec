import type { EntitySchema } from '@mikro-orm/core';
import type { z } from 'zod';
import type { Builder } from './builder.ts';
import { ConfigError, type Settings } from './config.ts';
import type { RequestContext, ScopeLoaders } from './context.ts';
import type { Contribution, ExtensionPoint } from './extensions.ts';
import type { Route } from './routes.ts';
import type { Runtime } from './runtime.ts';
import type { StoreBackend } from './store/backend.ts';
import type { Viewer } from './viewer.ts';

// The runtime's part that names modules: runtime.ts stands below this file, which names it.
declare module './runtime.ts' {
  interface Runtime {
    /** The gateway's modules, in dependency order (`composeModules`). */
    readonly modules: readonly PorticoModule[];
    /** The modules' instances, once the gateway (or a command) has set them up. */
    readonly instances: ModuleInstances;
  }
}

/**
 * Finds the viewer behind the request's credential (cookie, bearer key, ...); null when it has none
 * of its kind. It runs on the request's own context (its database forks), whose viewer is anonymous.
 */
export type CredentialResolver = (context: RequestContext) => Promise<Viewer | null>;

/**
 * What a module is in one running gateway: built by its `setup`, it holds the module's state, so
 * two gateways in one process share nothing. The kernel reads the members below; a module adds the
 * services its own GraphQL fields, routes and dependent modules use.
 */
export interface ModuleInstance {
  /** Tried in module order until one returns a viewer. */
  readonly credentials?: CredentialResolver;
  /** Plain HTTP routes, mounted beside /graphql. */
  readonly routes?: readonly Route[];
  /** What it adds to other modules' extension points (login methods, token purposes, hooks). */
  readonly contributes?: readonly Contribution[];
  /** Runs once every module is set up and the databases are ready, before the server listens. */
  start?(): Promise<void> | void;
  /**
   * Brings what the module keeps in the store in line with the configuration (index builds) before
   * store operations are served: after `start`, or, when the store did not answer at start, once it
   * does. Use `store`, not `runtime.store`, which refuses until then.
   */
  prepareStore?(store: StoreBackend): Promise<void>;
  /** Runs on shutdown, after the server stopped accepting requests, before the databases close; joins background work. */
  stop?(): Promise<void> | void;
}

/** The set-up modules of one gateway (`runtime.instances`). */
export interface ModuleInstances {
  /** The module's instance in this gateway. */
  of<Instance extends ModuleInstance>(module: PorticoModule<unknown, Instance>): Instance;
  /** Every value the modules and their instances contribute to `point`, in module order. */
  contributions<T>(point: ExtensionPoint<T>): T[];
}

/** A dependency's instance, for a module that named it in `dependsOn` (anything else throws). */
export type UseModule = <Instance extends ModuleInstance>(
  module: PorticoModule<unknown, Instance>,
) => Instance;

/** A subcommand of the `portico` CLI; returns the process exit code. */
export type ModuleCommand<Instance extends ModuleInstance = ModuleInstance> = {
  description: string;
} & (
  | {
      /** Runs on the module's instance, set up but not started (the databases open). */
      run(instance: Instance, args: string[]): Promise<number>;
    }
  | {
      /** Runs with nothing opened: no configuration, database or module (checking a file, say). */
      runAlone(args: string[]): Promise<number>;
    }
);

export interface ModuleDefinition<Api, Instance extends ModuleInstance> {
  /** Unique name; other modules name it in `dependsOn`. */
  name: string;
  /** Modules that must be present; they are set up and started first. */
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
  /**
   * What it adds to other modules' extension points that needs no instance (a login method), so
   * that configuration checks see it; contributions that need the module's state are its instance's.
   */
  contributes?: readonly Contribution[];
  /**
   * Builds the module's instance for one gateway: `use` gives the instances of the modules it
   * depends on. No I/O here (commands set modules up without starting them): that is `start`'s.
   */
  setup?: (runtime: Runtime, use: UseModule) => Instance;
  /**
   * Registers the module's GraphQL types and fields, once per process (Pothos types are global);
   * `self` finds the module's instance in the gateway serving a request.
   */
  graphql?(builder: Builder, self: (context: RequestContext) => Instance): void;
  /** Scope rules this module adds to every request (see `AuthScopes`). */
  authScopes?: (context: RequestContext) => ScopeLoaders;
  /**
   * The largest file this module takes in a GraphQL multipart request (e.g. `uploadBlob`). Multipart
   * bodies are held in memory, so the kernel caps files at the largest any module asks for (none: no
   * files at all), and never above the request body limit.
   */
  multipartFileBytes?: (settings: Settings) => number;
  /** Subcommands of the `portico` CLI, e.g. `bootstrap`. */
  commands?: Record<string, ModuleCommand<Instance>>;
  /**
   * What dependent modules may use without an instance: GraphQL type refs, extension points and
   * functions of their arguments only (no state; that lives on the instance).
   */
  api?: Api;
}

export interface PorticoModule<Api = unknown, Instance extends ModuleInstance = ModuleInstance>
  extends ModuleDefinition<Api, Instance> {
  readonly api: Api;
}

export function defineModule<const Api = undefined, Instance extends ModuleInstance = ModuleInstance>(
  definition: ModuleDefinition<Api, Instance>,
): PorticoModule<Api, Instance> {
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
  if (problems.length > 0) throw new ConfigError(problems);

  const ordered: PorticoModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (module: PorticoModule, path: string[]) => {
    if (state.get(module.name) === 'done') return;
    if (state.get(module.name) === 'visiting') {
      throw new ConfigError([`modules: dependency cycle ${[...path, module.name].join(' -> ')}`]);
    }
    state.set(module.name, 'visiting');
    for (const dependency of module.dependsOn ?? []) visit(byName.get(dependency)!, [...path, module.name]);
    state.set(module.name, 'done');
    ordered.push(module);
  };
  for (const module of modules) visit(module, []);
  return ordered;
}
