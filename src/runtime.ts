import type { Environment, Settings } from './config.ts';
import type { Databases } from './db.ts';
import type { Logger } from './logger.ts';
import type { PorticoModule } from './module.ts';
import type { PubSub } from './pubsub.ts';

/** What a running gateway gives its modules: configuration, databases, pub/sub, log. */
export interface Runtime {
  readonly env: Environment;
  readonly settings: Settings;
  readonly modules: readonly PorticoModule[];
  readonly db: Databases;
  readonly pubsub: PubSub;
  readonly log: Logger;
}
