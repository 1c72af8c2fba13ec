import { createInterface } from 'node:readline';
import type { Logger } from '../../logger.ts';
import { Fanout } from '../../pubsub/fanout.ts';
import type { StoreEventPayloads, StoreEvents } from '../backend.ts';
import type { RemoteConnection } from './connection.ts';
import { EVENT_PING_MS, type WireEvent } from './protocol.ts';

/** Waits between attempts to open the event stream again, growing to the last. */
const RECONNECT_MS = [100, 500, 1000, 2000, 5000];

/**
 * The data server's change events, as this gateway hears them: one long-lived response
 * (`GET /store/v1/events`, NDJSON) for every listener here. When it drops, it is opened again
 * after the last event heard (`?after=`): the data server replays what was missed when it still
 * has it, and otherwise says so, and this side then reports a gap (`onGap`), after which leases
 * and caches re-check what the lost events would have told them. The stream is open while the
 * store serves and someone listens: a store that is not current (the switch follows another) has none.
 */
export class RemoteEvents implements StoreEvents {
  readonly #connection: RemoteConnection;
  readonly #log: Logger;
  readonly #fanout: Fanout;
  readonly #gapListeners = new Set<() => void>();
  #last: string | null = null;
  #enabled = false;
  #closed = false;
  #listeners = 0;
  #running = false;
  /** Tells a stream loop that was stopped (and perhaps restarted since) to end. */
  #generation = 0;
  #abort: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #connected!: Promise<void>;
  #markConnected!: () => void;

  constructor(connection: RemoteConnection, log: Logger) {
    this.#connection = connection;
    this.#log = log;
    this.#fanout = new Fanout(log);
    this.#resetConnected();
  }

  on<K extends keyof StoreEventPayloads>(kind: K, listener: (event: StoreEventPayloads[K]) => void) {
    const off = this.#fanout.add(kind, listener as (payload: unknown) => void);
    this.#listeners++;
    this.#update();
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      off();
      this.#listeners--;
      this.#update();
    };
  }

  /** For listeners outside `runtime.store.events` (which uses `on`): keeps the stream open from then on. */
  subscribe<K extends keyof StoreEventPayloads>(kind: K): AsyncIterable<StoreEventPayloads[K]> {
    this.#listeners++;
    this.#update();
    return this.#fanout.iterate(kind) as AsyncIterable<StoreEventPayloads[K]>;
  }

  onGap(listener: () => void): () => void {
    this.#gapListeners.add(listener);
    return () => this.#gapListeners.delete(listener);
  }

  /** Resolves once the stream is open (or has failed once: no wait outlasts an outage). */
  ready(): Promise<void> {
    return this.#running ? this.#connected : Promise.resolve();
  }

  /** The store serves: the stream may open (once someone listens). */
  start(): void {
    this.#enabled = true;
    this.#update();
  }

  /** For good: the store closes. */
  stop(): void {
    this.#closed = true;
    this.#update();
    this.#fanout.close();
  }

  #update() {
    const wanted = this.#enabled && !this.#closed && this.#listeners > 0;
    if (wanted && !this.#running) {
      this.#running = true;
      void this.#run(++this.#generation);
    } else if (!wanted && this.#running) {
      this.#running = false;
      this.#generation++;
      clearTimeout(this.#timer);
      this.#abort?.abort();
      this.#resetConnected();
    }
  }

  #resetConnected() {
    this.#connected = new Promise((resolve) => {
      this.#markConnected = resolve;
    });
  }

  async #run(generation: number) {
    const current = () => this.#running && generation === this.#generation;
    let failures = 0;
    while (current()) {
      const abort = new AbortController();
      this.#abort = abort;
      let watchdog: NodeJS.Timeout | undefined;
      try {
        const query = this.#last ? `?after=${encodeURIComponent(this.#last)}` : '';
        const response = await this.#connection.request({
          method: 'GET',
          path: `/events${query}`,
          signal: abort.signal,
          long: true,
        });
        failures = 0;
        this.#markConnected();
        const quiet = () => abort.abort(new Error('the event stream went quiet'));
        watchdog = setTimeout(quiet, EVENT_PING_MS * 3).unref();
        for await (const line of createInterface({ input: response, crlfDelay: Infinity })) {
          watchdog.refresh();
          if (line) this.#receive(JSON.parse(line) as WireEvent & { seq?: string });
        }
      } catch (error) {
        if (!current()) return;
        if (failures === 0)
          this.#log.warn({ err: error }, "the data server's event stream dropped; opening it again");
        this.#markConnected();
        failures++;
      } finally {
        clearTimeout(watchdog);
      }
      if (!current()) return;
      const wait = RECONNECT_MS[Math.min(failures, RECONNECT_MS.length - 1)]!;
      await new Promise<void>((resolve) => {
        this.#timer = setTimeout(resolve, wait);
        this.#timer.unref();
      });
    }
  }

  #receive(line: WireEvent & { seq?: string }) {
    if (line.seq) this.#last = line.seq;
    if (line.kind === 'gap') {
      this.#log.warn('events of the data server may have been lost: re-checking');
      for (const listener of [...this.#gapListeners]) listener();
      return;
    }
    if (line.kind === 'ping') return;
    this.#fanout.deliver(line.kind, line.event);
  }
}
