import { openDatabases } from './db.ts';
import { LiveCredentials } from './live.ts';
import type { LoadedConfig } from './load-config.ts';
import type { Logger } from './logger.ts';
import { ModuleSet } from './module-instances.ts';
import { openPubSub } from './pubsub/open.ts';
import type { Runtime } from './runtime.ts';
import { openStore } from './store/open.ts';
import { type Clock, systemClock } from './timers.ts';

/** What aborts each runtime's `stopping` signal. */
const stoppers = new WeakMap<Runtime, AbortController>();

/** A runtime as the kernel holds it: with the module set it starts and stops. */
export type OpenRuntime = Runtime & { readonly instances: ModuleSet };

/**
 * Opens the databases (bringing their schemas up to date) and the pub/sub, and sets the modules
 * up; starts none. `config.modules` come composed (`composeModules`). `deferUnreachableStore`:
 * see `openDatabases`.
 */
export async function openRuntime(
  config: LoadedConfig,
  log: Logger,
  clock: Clock = systemClock,
  { deferUnreachableStore = false } = {},
): Promise<OpenRuntime> {
  const { env, settings, modules } = config;
  const db = await openDatabases({ env, modules, log, deferUnreachableStore });
  try {
    const pubsub = await openPubSub({ env, log });
    const stopper = new AbortController();
    const live = new LiveCredentials();
    const runtime: OpenRuntime = {
      env,
      settings,
      modules,
      instances: new ModuleSet(modules),
      db,
      store: openStore(db, pubsub, log, env.databaseUrl),
      pubsub,
      live,
      log,
      clock,
      stopping: stopper.signal,
    };
    stoppers.set(runtime, stopper);
    runtime.instances.setUp(runtime);
    return runtime;
  } catch (error) {
    await db.close();
    throw error;
  }
}

/** Aborts the runtime's `stopping` signal: long waits end and answer now. */
export function beginStopping(runtime: Runtime): void {
  stoppers.get(runtime)?.abort();
}

/** Closes what `openRuntime` opened: the pub/sub (its last events go out), then the databases. */
export async function closeRuntime(runtime: Runtime): Promise<void> {
  beginStopping(runtime);
  try {
    await runtime.pubsub.close();
  } finally {
    await runtime.db.close();
  }
}
