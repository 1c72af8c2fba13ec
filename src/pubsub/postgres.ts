import { createHash } from 'node:crypto';
import pg from 'pg';
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

/** PostgreSQL's longest identifier (NAMEDATALEN - 1): LISTEN truncates longer names, pg_notify refuses them. */
const MAX_CHANNEL_LENGTH = 63;

/**
 * The channel of a topic: `<prefix>_<topic>`, every character other than an ASCII letter or
 * digit made `_`; a name too long keeps its start and gets a digest of the topic.
 */
export function postgresChannel(prefix: string, topic: string): string {
  const name = `${prefix}_${topic}`.replace(/[^A-Za-z0-9]/g, '_');
  if (name.length <= MAX_CHANNEL_LENGTH) return name;
  const digest = createHash('sha256').update(topic).digest('hex').slice(0, 12);
  return `${name.slice(0, MAX_CHANNEL_LENGTH - digest.length - 1)}_${digest}`;
}

export interface PostgresPubSubOptions {
  /** The system database's URL. LISTEN/NOTIFY reach the sessions of that same database only. */
  url: string;
  log: Logger;
  /** Starts every channel name (default `portico`). */
  prefix?: string;
  /** `application_name` of the connections, suffixed `-listen` and `-notify` (default `portico-pubsub`). */
  applicationName?: string;
  heartbeat?: Heartbeat;
  lag?: DeliveryLag;
}

/**
 * The pub/sub over PostgreSQL LISTEN/NOTIFY: one connection that listens to a channel per topic
 * (reconnected with backoff when it ends, then listening again and reporting a gap), and a
 * one-connection pool that sends NOTIFYs in publish order. Rejects when the database cannot be
 * reached at start.
 */
export async function openPostgresPubSub({
  url,
  log,
  prefix = 'portico',
  applicationName = 'portico-pubsub',
  heartbeat,
  lag,
}: PostgresPubSubOptions): Promise<PubSub> {
  /** The LISTEN connection, while it is up. */
  let listener: pg.Client | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let closed = false;
  // The LISTEN connection's statements, one at a time: a LISTEN and a ping may be asked for
  // together, and pg refuses (deprecates) a query while its client runs another.
  let listenerQueue: Promise<unknown> = Promise.resolve();
  const onListener = (sql: string) => {
    const run = listenerQueue.then(() => {
      if (!listener) throw new Error('no LISTEN connection');
      return listener.query(sql);
    });
    listenerQueue = run.catch(() => {});
    return run;
  };

  // One connection: NOTIFYs leave in the order they were published.
  const notifier = new pg.Pool({
    connectionString: url,
    application_name: `${applicationName}-notify`,
    max: 1,
    idleTimeoutMillis: 0,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: SEND_TIMEOUT_MS,
    keepAlive: true,
  });
  notifier.on('error', (error) => log.warn({ err: error }, 'pub/sub: the NOTIFY connection failed'));

  const pubsub: BrokeredPubSub = new BrokeredPubSub(
    { log, broker: 'PostgreSQL', channelOf: (topic) => postgresChannel(prefix, topic), heartbeat, lag },
    () => ({
      async listen(channels) {
        await onListener(channels.map((channel) => `listen ${pg.escapeIdentifier(channel)}`).join('; '));
      },
      async ping() {
        await onListener('select 1');
      },
      reconnect() {
        if (listener) lose(listener);
      },
      async send(channel, message) {
        await notifier.query('select pg_notify($1, $2)', [channel, message]);
      },
      async close() {
        closed = true;
        clearTimeout(reconnectTimer);
        const ending = listener;
        listener = undefined;
        await within(Promise.all([ending?.end(), notifier.end()]), CLOSE_TIMEOUT_MS);
      },
    }),
  );

  const connectListener = async () => {
    const client = new pg.Client({
      connectionString: url,
      application_name: `${applicationName}-listen`,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // A LISTEN without an answer fails, so the connection is made anew rather than waited on.
      query_timeout: SEND_TIMEOUT_MS,
      keepAlive: true,
    });
    client.on('notification', ({ channel, payload }) => {
      if (client === listener && payload !== undefined) pubsub.received(channel, payload);
    });
    client.on('error', (error) => {
      if (client === listener) log.warn({ err: error }, 'pub/sub: the LISTEN connection failed');
      lose(client);
    });
    client.on('end', () => lose(client));
    await client.connect();
    return client;
  };

  /** Forgets a LISTEN connection that ended or failed, and makes a new one (unless closing). */
  const lose = (client: pg.Client) => {
    if (client !== listener) return;
    listener = undefined;
    pubsub.connectionLost();
    // Not awaited: a connection that stopped answering may never finish saying goodbye.
    client.end().catch(() => {});
    if (!closed) scheduleReconnect(0);
  };

  const scheduleReconnect = (attempt: number) => {
    reconnectTimer = setTimeout(async () => {
      try {
        const client = await connectListener();
        if (closed) {
          await client.end();
          return;
        }
        listener = client;
        await pubsub.connected();
      } catch (error) {
        if (closed) return;
        const delay = reconnectDelay(attempt + 1);
        // Once per outage: the retries that follow would log it every few seconds.
        if (attempt === 0) {
          log.warn({ err: error, retryInMs: delay }, 'pub/sub: reconnecting to PostgreSQL failed; retrying');
        }
        scheduleReconnect(attempt + 1);
      }
    }, reconnectDelay(attempt));
  };

  try {
    listener = await connectListener();
  } catch (error) {
    await pubsub.close();
    throw new Error(
      `Cannot open the pub/sub's LISTEN connection to the system database (PostgreSQL): ${errorText(error)}`,
      { cause: error },
    );
  }
  await pubsub.connected();
  return pubsub;
}
