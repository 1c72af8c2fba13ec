import type { Environment, Settings } from './config.ts';
import type { Databases } from './db.ts';
import type { LiveCredentials } from './live.ts';
import type { Logger } from './logger.ts';
import type { PorticoModule } from './module.ts';
import type { PubSub } from './pubsub.ts';

/** The time, as the gateway sees it: real by default, controllable in tests. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** What a running gateway gives its modules: configuration, databases, pub/sub, live streams, log, clock. */
export interface Runtime {
  readonly env: Environment;
  readonly settings: Settings;
  readonly modules: readonly PorticoModule[];
  readonly db: Databases;
  readonly pubsub: PubSub;
  /** The credentials behind this instance's open subscriptions. */
  readonly live: LiveCredentials;
  readonly log: Logger;
  readonly clock: Clock;
}
