import type { Environment, Settings } from './config.ts';
import type { Databases } from './db.ts';
import type { LiveCredentials } from './live.ts';
import type { Logger } from './logger.ts';
import type { PorticoModule } from './module.ts';
import type { PubSub } from './pubsub.ts';
import type { StoreBackend } from './store/backend.ts';

/** The time, as the gateway sees it: real by default, controllable in tests. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * Runs `task` every `intervalMs`, never twice at once: a slow run (a slow database) delays the
 * next instead of piling runs up. `run()` runs it now, or joins the run in progress. `stop()`
 * ends the timer and resolves once the run in progress is over (a shutdown closes the databases
 * next). The timer does not keep the process alive; `task` handles its own errors.
 */
export function every(intervalMs: number, task: () => Promise<void>) {
  let running: Promise<void> | null = null;
  const run = () => {
    running ??= task().finally(() => {
      running = null;
    });
    return running;
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return {
    run,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

/** What a running gateway gives its modules: configuration, databases, the store, pub/sub, live streams, log, clock. */
export interface Runtime {
  readonly env: Environment;
  readonly settings: Settings;
  readonly modules: readonly PorticoModule[];
  readonly db: Databases;
  /** The business data (collections, blob metadata, leases), whatever backend holds it. */
  readonly store: StoreBackend;
  readonly pubsub: PubSub;
  /** The credentials behind this instance's open subscriptions. */
  readonly live: LiveCredentials;
  readonly log: Logger;
  readonly clock: Clock;
  /**
   * Aborted when the gateway begins to stop: a long wait (a lease wait) ends now and answers,
   * rather than holding its request until the shutdown's grace runs out.
   */
  readonly stopping: AbortSignal;
}
