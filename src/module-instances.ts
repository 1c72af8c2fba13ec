import type { ExtensionPoint } from './extensions.ts';
import type {
  CredentialResolver,
  ModuleInstance,
  ModuleInstances,
  PorticoModule,
  UseModule,
} from './module.ts';
import type { Route } from './routes.ts';
import type { Runtime } from './runtime.ts';

/**
 * The instances of one gateway's modules, in dependency order: built by `setUp`, started, and
 * stopped in reverse. It is the only place a module's state is found from the runtime.
 */
export class ModuleSet implements ModuleInstances {
  readonly #modules: readonly PorticoModule[];
  readonly #instances = new Map<string, ModuleInstance>();

  /** `modules` in dependency order (`composeModules`). */
  constructor(modules: readonly PorticoModule[]) {
    this.#modules = modules;
  }

  /** Builds every instance; a module sees the instances of the modules it depends on. */
  setUp(runtime: Runtime): void {
    for (const module of this.#modules) {
      const use: UseModule = (dependency) => {
        if (!module.dependsOn?.includes(dependency.name)) {
          throw new Error(`Module "${module.name}" uses "${dependency.name}" without naming it in dependsOn`);
        }
        return this.of(dependency);
      };
      this.#instances.set(module.name, module.setup?.(runtime, use) ?? {});
    }
  }

  of<Instance extends ModuleInstance>(module: PorticoModule<unknown, Instance>): Instance {
    const instance = this.#instances.get(module.name);
    if (!instance) throw new Error(`Module "${module.name}" is not set up in this gateway`);
    return instance as Instance;
  }

  contributions<T>(point: ExtensionPoint<T>): T[] {
    return this.#modules.flatMap((module) =>
      [...(module.contributes ?? []), ...(this.#instances.get(module.name)?.contributes ?? [])].flatMap(
        (contribution) => (contribution.point === point ? [contribution.value as T] : []),
      ),
    );
  }

  get credentials(): CredentialResolver[] {
    return [...this.#instances.values()].flatMap((instance) => instance.credentials ?? []);
  }

  get routes(): Route[] {
    return [...this.#instances.values()].flatMap((instance) => instance.routes ?? []);
  }

  async start(): Promise<void> {
    for (const instance of this.#instances.values()) await instance.start?.();
  }

  async prepareStore(store: Parameters<NonNullable<ModuleInstance['prepareStore']>>[0]): Promise<void> {
    for (const instance of this.#instances.values()) await instance.prepareStore?.(store);
  }

  /** Stops the instances in reverse order: a module stops before those it depends on. */
  async stop(): Promise<void> {
    for (const instance of [...this.#instances.values()].reverse()) await instance.stop?.();
  }
}
