import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { serviceUnavailable } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { MAX_MESSAGE_BYTES, type PubSub, type TopicName, type Topics } from '../pubsub.ts';
import { Fanout } from './fanout.ts';

/** Sends in flight at most; beyond, events are not sent to other instances (memory stays bounded). */
export const MAX_PENDING_SENDS = 1000;

/** Connect timeout of broker connections, at start and when reconnecting. */
export const CONNECT_TIMEOUT_MS = 3000;

/** A send not acknowledged by then has failed (logged). */
export const SEND_TIMEOUT_MS = 5000;

/** `close` waits this long for the broker to say goodbye, then drops the connections. */
export const CLOSE_TIMEOUT_MS = 2000;

/** Delay before reconnection attempt `attempt` (0-based): 100 ms doubling up to 5 s. */
export const reconnectDelay = (attempt: number) => Math.min(100 * 2 ** attempt, 5000);

export interface Heartbeat {
  /** How often the subscriber connection is pinged. */
  intervalMs: number;
  /** A ping without an answer by then drops the connection, which is then made anew (a gap). */
  timeoutMs: number;
}

/** Catches a subscriber connection that died silently (no reset from the network) within a minute. */
export const DEFAULT_HEARTBEAT: Heartbeat = { intervalMs: 30_000, timeoutMs: 10_000 };

/** What a broker adapter gives the shared logic: its subscriber connection and its sends. */
export interface BrokerLink {
  /** Listens to the channels on the current subscriber connection; rejects if that fails. */
  listen(channels: readonly string[]): Promise<void>;
  /** A round trip on the subscriber connection. */
  ping(): Promise<void>;
  /** Drops the subscriber connection at once; the adapter makes a new one and calls `connected`. */
  reconnect(): void;
  /** Sends one message; rejects when the broker did not take it. */
  send(channel: string, message: string): Promise<void>;
  /** Ends every connection (sends have settled by then). */
  close(): Promise<void>;
}

/** Where the time from another instance's publish to its delivery here is observed, in seconds. */
export interface DeliveryLag {
  observe(seconds: number): void;
}

export interface BrokeredOptions {
  log: Logger;
  /** For log lines: `PostgreSQL`, `Redis`. */
  broker: string;
  /** The broker channel of a topic. Several topics may share one: messages name their topic. */
  channelOf(topic: string): string;
  heartbeat?: Heartbeat;
  lag?: DeliveryLag;
}

/** What travels through the broker. */
interface Envelope {
  topic: string;
  /** The publishing instance, which skips its own messages (it delivered them locally). */
  from: string;
  /** When it was published (epoch milliseconds), for the delivery lag; absent from older instances. */
  at?: number;
  payload: unknown;
}

const isEnvelope = (value: unknown): value is Envelope =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as Envelope).topic === 'string' &&
  typeof (value as Envelope).from === 'string' &&
  'payload' in value;

/** Resolves with the promise's outcome, or after `ms` regardless (the timer does not hold the process). */
export const within = (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(noop, noop), sleep(ms, undefined, { ref: false })]);

const noop = () => {};

/** An error's message, or its code when it has none (Node's AggregateError of a refused connection). */
export const errorText = (error: unknown) =>
  (error as Error)?.message || (error as NodeJS.ErrnoException)?.code || String(error);

/**
 * The pub/sub over a broker (PostgreSQL LISTEN/NOTIFY, Redis): local delivery, the envelope,
 * the size limit, bounded sends, which channels to listen to and re-listen to after a
 * reconnection, gaps, and the heartbeat. The adapter owns the connections and reports
 * on them with `received`, `connected` and `connectionLost`.
 */
export class BrokeredPubSub implements PubSub {
  readonly #origin = randomBytes(12).toString('base64url');
  readonly #log: Logger;
  readonly #broker: string;
  readonly #channelOf: (topic: string) => string;
  readonly #link: BrokerLink;
  readonly #fanout: Fanout;
  readonly #lag: DeliveryLag | undefined;
  /** Every channel asked for, with the promise that it was listened to. */
  readonly #channels = new Map<string, Promise<void>>();
  /** The channels listened to on the current subscriber connection; undefined while it is not ready. */
  #listened: Set<string> | undefined;
  /** Resolved once a subscriber connection listens to every channel asked for. */
  #whenConnected = Promise.withResolvers<void>();
  /** Resolved when the subscriber connection that listens now is lost. */
  #whenLost = Promise.withResolvers<void>();
  /** Bumped by each connection and loss, so a listen that outlived its connection is noticed. */
  #epoch = 0;
  #everConnected = false;
  readonly #gapListeners = new Set<() => void>();
  readonly #sends = new Set<Promise<void>>();
  readonly #heartbeat: NodeJS.Timeout;
  #pinging = false;
  #closed = false;

  constructor(options: BrokeredOptions, link: (pubsub: BrokeredPubSub) => BrokerLink) {
    this.#log = options.log;
    this.#broker = options.broker;
    this.#channelOf = options.channelOf;
    this.#fanout = new Fanout(options.log);
    this.#lag = options.lag;
    this.#link = link(this);
    const heartbeat = options.heartbeat ?? DEFAULT_HEARTBEAT;
    this.#heartbeat = setInterval(() => this.#ping(heartbeat.timeoutMs), heartbeat.intervalMs);
    this.#heartbeat.unref();
  }

  publish<T extends TopicName>(topic: T, payload: Topics[T]): void {
    if (this.#closed) {
      this.#log.error({ topic }, `pub/sub: ${topic} published after close; dropped`);
      return;
    }
    let message: string;
    try {
      message = JSON.stringify({ topic, from: this.#origin, at: Date.now(), payload } satisfies Envelope);
    } catch (error) {
      this.#log.error({ err: error, topic }, `pub/sub: ${topic} payload is not JSON; dropped`);
      return;
    }
    const bytes = Buffer.byteLength(message);
    if (bytes > MAX_MESSAGE_BYTES) {
      // Refused here too, not only for other instances: every instance sees the same events.
      this.#log.error(
        { topic, bytes, limit: MAX_MESSAGE_BYTES },
        `pub/sub: ${topic} event of ${bytes} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit; dropped (publish ids, not documents)`,
      );
      return;
    }
    this.#fanout.deliver(topic, payload);
    if (this.#sends.size >= MAX_PENDING_SENDS) {
      this.#log.error(
        { topic, pending: this.#sends.size },
        `pub/sub: ${this.#broker} is not keeping up; ${topic} event not sent to other instances`,
      );
      return;
    }
    const send: Promise<void> = this.#link
      .send(this.#channelOf(topic), message)
      .catch((error: unknown) => {
        this.#log.error(
          { err: error, topic },
          `pub/sub: ${topic} event not sent to other instances through ${this.#broker}`,
        );
      })
      .finally(() => this.#sends.delete(send));
    this.#sends.add(send);
  }

  subscribe<T extends TopicName>(topic: T): AsyncIterable<Topics[T]> {
    const events = this.#fanout.iterate(topic) as AsyncIterable<Topics[T]>;
    this.#listenTo(topic);
    return events;
  }

  on<T extends TopicName>(topic: T, listener: (payload: Topics[T]) => void): () => void {
    const off = this.#fanout.add(topic, listener as (payload: unknown) => void);
    this.#listenTo(topic);
    return off;
  }

  onGap(listener: () => void): () => void {
    // A wrapper per registration, as for `on`.
    const entry = () => listener();
    this.#gapListeners.add(entry);
    return () => this.#gapListeners.delete(entry);
  }

  async ready(): Promise<void> {
    // While the broker is away a new listen waits for it: a subscription then answers
    // SERVICE_UNAVAILABLE at once instead of hanging (before the first connection, start-up waits).
    const unavailable = () =>
      serviceUnavailable(`The ${this.#broker} pub/sub is unavailable; retry shortly.`);
    if (this.#everConnected && !this.#listened && !this.#closed) throw unavailable();
    await Promise.race([
      Promise.all(this.#channels.values()),
      this.#whenLost.promise.then(() => {
        throw unavailable();
      }),
    ]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#fanout.close();
    // Waiting listens see `#closed` and give up.
    this.#whenConnected.resolve();
    // Sends end within SEND_TIMEOUT_MS: events published just before close still go out.
    await Promise.allSettled(this.#sends);
    await this.#link.close();
  }

  /** A message from the broker. */
  received(channel: string, message: string): void {
    if (this.#closed) return;
    let envelope: unknown;
    try {
      envelope = JSON.parse(message);
    } catch {
      envelope = undefined;
    }
    if (!isEnvelope(envelope) || this.#channelOf(envelope.topic) !== channel) {
      this.#log.warn({ channel }, `pub/sub: ignored a message on ${channel} that Portico did not send`);
      return;
    }
    if (envelope.from === this.#origin) return;
    // Wall clocks of two hosts: a clock behind the publisher's would make it negative.
    if (this.#lag && typeof envelope.at === 'number')
      this.#lag.observe(Math.max(0, Date.now() - envelope.at) / 1000);
    this.#fanout.deliver(envelope.topic, envelope.payload);
  }

  /**
   * The subscriber connection is up (first, or again): listen to every channel, then, if an
   * earlier connection existed, tell the gap listeners.
   */
  async connected(): Promise<void> {
    if (this.#closed) return;
    // Whatever was listened to went with the previous connection.
    this.connectionLost();
    const epoch = this.#epoch;
    const listened = new Set<string>();
    try {
      // Channels asked for while listening are picked up by the next round.
      for (;;) {
        const missing = [...this.#channels.keys()].filter((channel) => !listened.has(channel));
        if (missing.length === 0) break;
        await this.#link.listen(missing);
        if (epoch !== this.#epoch) return;
        for (const channel of missing) listened.add(channel);
      }
    } catch (error) {
      if (epoch === this.#epoch) this.#dropConnection(error, 'listening again failed');
      return;
    }
    if (epoch !== this.#epoch || this.#closed) return;
    this.#listened = listened;
    this.#whenLost = Promise.withResolvers<void>();
    this.#whenConnected.resolve();
    if (!this.#everConnected) {
      this.#everConnected = true;
      return;
    }
    this.#log.info(
      { channels: listened.size },
      `pub/sub: listening on ${this.#broker} again; events sent meanwhile are lost (gap)`,
    );
    for (const listener of [...this.#gapListeners]) {
      try {
        listener();
      } catch (error) {
        this.#log.error({ err: error }, 'pub/sub: a gap listener failed');
      }
    }
  }

  /** The subscriber connection ended or failed; the adapter reconnects and calls `connected`. */
  connectionLost(): void {
    this.#epoch++;
    if (this.#listened) {
      this.#listened = undefined;
      this.#whenConnected = Promise.withResolvers<void>();
      this.#whenLost.resolve();
    }
  }

  #dropConnection(error: unknown, why: string) {
    if (this.#closed) return;
    this.#log.warn({ err: error }, `pub/sub: ${why}; reconnecting to ${this.#broker}`);
    this.connectionLost();
    this.#link.reconnect();
  }

  /** Starts listening to the topic's channel, once per channel. */
  #listenTo(topic: string) {
    if (this.#closed) return;
    const channel = this.#channelOf(topic);
    if (!this.#channels.has(channel)) this.#channels.set(channel, this.#listenOnce(channel));
  }

  async #listenOnce(channel: string): Promise<void> {
    for (;;) {
      if (this.#closed) return;
      const listened = this.#listened;
      if (!listened) {
        // `connected` will listen to it with the others.
        await this.#whenConnected.promise;
        continue;
      }
      if (listened.has(channel)) return;
      try {
        await this.#link.listen([channel]);
        listened.add(channel);
        return;
      } catch (error) {
        if (listened === this.#listened) this.#dropConnection(error, `listening to ${channel} failed`);
      }
    }
  }

  #ping(timeoutMs: number) {
    if (this.#pinging || !this.#listened) return;
    this.#pinging = true;
    const epoch = this.#epoch;
    const timeout = sleep(timeoutMs, undefined, { ref: false }).then(() => {
      throw new Error(`no answer within ${timeoutMs} ms`);
    });
    Promise.race([this.#link.ping(), timeout])
      .catch((error: unknown) => {
        if (epoch === this.#epoch) this.#dropConnection(error, 'the subscriber connection stopped answering');
      })
      .finally(() => {
        this.#pinging = false;
      });
  }
}
