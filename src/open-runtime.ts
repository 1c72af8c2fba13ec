import { openDatabases } from './db.ts';
import { LiveCredentials } from './live.ts';
import type { LoadedConfig } from './load-config.ts';
import type { Logger } from './logger.ts';
import { openPubSub } from './pubsub/open.ts';
import type { Runtime } from './runtime.ts';
import { type Clock, systemClock } from './timers.ts';

/** What aborts each runtime's `stopping` signal. */
const stoppers = new WeakMap<Runtime, AbortController>();

/**
 * Opens the databases (bringing their schemas up to date) and the pub/sub; starts no module.
 * `config.modules` come composed (`composeModules`). `deferUnreachableStore`: see `openDatabases`.
 */
export async function openRuntime(
  config: LoadedConfig,
  log: Logger,
  clock: Clock = systemClock,
  { deferUnreachableStore = false } = {},
): Promise<Runtime> {
  const { env, settings, modules } = config;
  const db = await openDatabases({ env, modules, log, deferUnreachableStore });
  try {
    const pubsub = await openPubSub({ env, log });
    const stopper = new AbortController();
    const live = new LiveCredentials();
    const runtime: Runtime = {
      env,
      settings,
      modules,
      db,
      pubsub,
      live,
      log,
      clock,
      stopping: stopper.signal,
    };
    stoppers.set(runtime, stopper);
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
