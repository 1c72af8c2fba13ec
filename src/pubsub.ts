import { type Environment, parseDatabaseUrl } from './config.ts';
import type { Logger } from './logger.ts';
import { Fanout } from './pubsub/fanout.ts';

export { MAX_MESSAGE_BYTES } from './pubsub/brokered.ts';

/**
 * Event topics and their payloads. Modules add theirs by interface merging.
 * One topic per event kind; subscribers filter in process.
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by modules
export interface Topics {}

export type TopicName = keyof Topics & string;

/**
 * Events between the parts of a gateway and, through a broker, between the instances of a
 * deployment. Delivery is at most once: an event can be lost (a broker connection down, a send
 * that failed), never duplicated. An instance's own events reach its listeners at once, during
 * `publish`; other instances' events come in each publisher's order.
 */
export interface PubSub {
  /**
   * Fire and forget: never throws or waits; failures are logged. A payload must be plain JSON
   * of a few kilobytes at most (ids, not documents): the broker adapters refuse one whose message
   * is over `MAX_MESSAGE_BYTES` (logged), for local listeners too.
   */
  publish<T extends TopicName>(topic: T, payload: Topics[T]): void;
  /**
   * For GraphQL subscriptions: the topic's events from this call on, as an async iterator;
   * `return()` (ending the `for await`) stops it. It holds up to a thousand unread events.
   */
  subscribe<T extends TopicName>(topic: T): AsyncIterable<Topics[T]>;
  /** For in-process listeners (cache invalidation): returns the unsubscribe function. */
  on<T extends TopicName>(topic: T, listener: (payload: Topics[T]) => void): () => void;
  /**
   * Called when this instance may have missed other instances' events: its broker connection
   * dropped and was made anew (the listener runs once it listens again). Whoever keeps state
   * from events (caches) should drop or re-check it. Returns the function that removes it.
   */
  onGap(listener: () => void): () => void;
  /**
   * `on` and `subscribe` start listening to their topic on the broker without waiting for it.
   * This resolves once every topic asked for so far is listened to: from then on, other
   * instances' events on those topics arrive (barring a gap). Await it after `subscribe` when
   * an event published right after must not be missed; the gateway awaits it after starting
   * the modules, before it accepts requests.
   */
  ready(): Promise<void>;
  /** Ends subscriptions and broker connections; events already published are sent first. */
  close(): Promise<void>;
}

export type PubSubAdapter = 'local' | 'postgresql' | 'redis';

export interface OpenPubSubOptions {
  env: Pick<Environment, 'redisUrl' | 'systemDatabaseUrl'>;
  log: Logger;
}

/** Which adapter a deployment uses: Redis when REDIS_URL is set, else PostgreSQL when the system database is one. */
export function pubSubAdapterFor(env: OpenPubSubOptions['env']): PubSubAdapter {
  if (env.redisUrl) return 'redis';
  return parseDatabaseUrl(env.systemDatabaseUrl).dialect === 'postgresql' ? 'postgresql' : 'local';
}

/**
 * The pub/sub of a gateway: over Redis (REDIS_URL), else over the system database when it is
 * PostgreSQL (LISTEN/NOTIFY, no extra service), else in process (one instance). Resolves once
 * connected; rejects with a clear message when the broker cannot be reached.
 */
export async function openPubSub({ env, log }: OpenPubSubOptions): Promise<PubSub> {
  const adapter = pubSubAdapterFor(env);
  // The broker adapters are loaded only when chosen.
  if (adapter === 'redis') {
    const { openRedisPubSub } = await import('./pubsub/redis.ts');
    return openRedisPubSub({ url: env.redisUrl!, log });
  }
  if (adapter === 'postgresql') {
    const { openPostgresPubSub } = await import('./pubsub/postgres.ts');
    return openPostgresPubSub({ url: env.systemDatabaseUrl, log });
  }
  return createLocalPubSub(log);
}

/** For the start's log line. */
export const PUBSUB_ADAPTER_DESCRIPTIONS: Record<PubSubAdapter, string> = {
  redis: 'Redis (REDIS_URL), for several instances',
  postgresql: 'PostgreSQL LISTEN/NOTIFY on the system database, for several instances',
  local: 'in process, for one instance',
};

/** The in-process adapter: one gateway instance, no broker, so never a gap. */
export function createLocalPubSub(log: Logger): PubSub {
  const fanout = new Fanout(log);
  return {
    publish(topic, payload) {
      fanout.deliver(topic, payload);
    },
    subscribe(topic) {
      return fanout.iterate(topic) as AsyncIterable<Topics[typeof topic]>;
    },
    on(topic, listener) {
      return fanout.add(topic, listener as (payload: unknown) => void);
    },
    onGap: () => () => {},
    ready: async () => {},
    async close() {
      fanout.close();
    },
  };
}
