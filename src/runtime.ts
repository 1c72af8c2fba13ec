import type { Environment, Settings } from './config.ts';
import type { Databases } from './db.ts';
import type { LiveCredentials } from './live.ts';
import type { Logger } from './logger.ts';
import type { PubSub } from './pubsub.ts';
import type { StoreBackend } from './store/backend.ts';
import type { StoreSwitch } from './store/switch.ts';
import type { GatewayMetrics } from './telemetry/metrics.ts';
import type { Clock } from './timers.ts';

/**
 * What a running gateway gives its modules: configuration, databases, pub/sub, live streams, log,
 * clock. `module.ts` adds the modules themselves (`modules`) by interface merging, as modules add
 * their settings: module definitions name the runtime, so the runtime cannot name them.
 */
export interface Runtime {
  readonly env: Environment;
  readonly settings: Settings;
  readonly db: Databases;
  /** The business data (collections, blob metadata, leases), whatever backend holds it. */
  readonly store: StoreBackend;
  /** Changes the backend behind `store` while the gateway runs (admins' `switchStoreBackend`). */
  readonly storeSwitch: StoreSwitch;
  readonly pubsub: PubSub;
  /** The credentials behind this instance's open subscriptions. */
  readonly live: LiveCredentials;
  readonly log: Logger;
  /** This gateway's counters (`GET /metrics`, the console's overview); modules add theirs here. */
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  /**
   * Aborted when the gateway begins to stop: a long wait (a lease wait) ends now and answers,
   * rather than holding its request until the shutdown's grace runs out.
   */
  readonly stopping: AbortSignal;
}
