import { Redis, type RedisOptions } from 'ioredis';
import { StartupError } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub.ts';
import {
  BrokeredPubSub,
  CLOSE_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  type DeliveryLag,
  errorText,
  type Heartbeat,
  reconnectDelay,
  SEND_TIMEOUT_MS,
  within,
} from './brokered.ts';

export interface RedisPubSubOptions {
  /** `REDIS_URL`. */
  url: string;
  log: Logger;
  /** Starts every channel name, `<prefix>:<topic>` (default `portico`). */
  prefix?: string;
  /** Client name of the connections, suffixed `-subscribe` and `-publish` (default `portico-pubsub`). */
  clientName?: string;
  heartbeat?: Heartbeat;
  lag?: DeliveryLag;
}

/**
 * The pub/sub over Redis: one subscriber connection listening to a channel per topic, one
 * publisher connection. ioredis reconnects both with backoff; the subscriber then listens again
 * and reports a gap. Rejects, naming REDIS_URL, when Redis cannot be reached at start.
 */
export async function openRedisPubSub({
  url,
  log,
  prefix = 'portico',
  clientName = 'portico-pubsub',
  heartbeat,
  lag,
}: RedisPubSubOptions): Promise<PubSub> {
  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: SEND_TIMEOUT_MS,
    retryStrategy: (times) => reconnectDelay(times - 1),
  };
  const subscriber = new Redis(url, {
    ...common,
    connectionName: `${clientName}-subscribe`,
    // Listening again is the shared logic's job: it must know when it is done, to report the gap.
    autoResubscribe: false,
    // Commands wait for no reconnection: a listen that fails is retried on the next connection.
    enableOfflineQueue: false,
  });
  const publisher = new Redis(url, { ...common, connectionName: `${clientName}-publish` });

  const pubsub = new BrokeredPubSub(
    { log, broker: 'Redis', channelOf: (topic) => `${prefix}:${topic}`, heartbeat, lag },
    () => ({
      async listen(channels) {
        await subscriber.subscribe(...channels);
      },
      async ping() {
        await subscriber.ping();
      },
      reconnect() {
        // Destroyed, not ended: a peer that stopped answering would never complete a clean close.
        subscriber.stream?.destroy();
      },
      async send(channel, message) {
        await publisher.publish(channel, message);
      },
      async close() {
        await Promise.all([quit(subscriber), quit(publisher)]);
      },
    }),
  );

  subscriber.on('message', (channel: string, message: string) => pubsub.received(channel, message));
  subscriber.on('close', () => pubsub.connectionLost());
  // The cause of a failed start: connect() itself only says "Connection is closed".
  let lastError: unknown;
  subscriber.on('error', (error) => {
    lastError = error;
    log.warn({ err: error }, 'pub/sub: the Redis subscriber connection failed');
  });
  publisher.on('error', (error) => {
    lastError = error;
    log.warn({ err: error }, 'pub/sub: the Redis publisher connection failed');
  });

  try {
    // Bounded: a server that accepts the connection but never answers must not hold the start.
    await Promise.race([
      Promise.all([subscriber.connect(), publisher.connect()]),
      new Promise((_, reject) => {
        setTimeout(
          () => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)),
          CONNECT_TIMEOUT_MS,
        ).unref();
      }),
    ]);
  } catch (error) {
    await pubsub.close();
    const cause = lastError ?? error;
    throw new StartupError(`Cannot connect to Redis (REDIS_URL) for the pub/sub: ${errorText(cause)}`, {
      cause,
    });
  }
  // Registered once connected: the first connection needs no gap, and is awaited here.
  subscriber.on('ready', () => void pubsub.connected());
  await pubsub.connected();
  return pubsub;
}

/** Says goodbye if the connection is up, then stops it (and any reconnection attempt) for good. */
async function quit(client: Redis) {
  if (client.status === 'ready') await within(client.quit(), CLOSE_TIMEOUT_MS);
  client.disconnect();
}
