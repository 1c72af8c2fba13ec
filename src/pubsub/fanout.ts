import type { Logger } from '../logger.ts';

/** Events a subscription holds for a consumer that reads slower than they come; beyond, the oldest go. */
export const MAX_BUFFERED_EVENTS = 1000;

type Listener = (payload: unknown) => void;

/**
 * In-process delivery of each topic's events to listeners and subscription iterators,
 * shared by every adapter. A listener that throws is logged and does not stop the others.
 */
export class Fanout {
  readonly #listeners = new Map<string, Set<Listener>>();
  /** How to end each open subscription iterator, for `close`. */
  readonly #iterators = new Set<() => void>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Registers a listener; returns the function that removes it. */
  add(topic: string, listener: Listener): () => void {
    let listeners = this.#listeners.get(topic);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(topic, listeners);
    }
    const registered = listeners;
    // A wrapper per registration: the same function added twice is removed once per disposer.
    const entry: Listener = (payload) => listener(payload);
    registered.add(entry);
    return () => {
      registered.delete(entry);
      if (registered.size === 0 && this.#listeners.get(topic) === registered) this.#listeners.delete(topic);
    };
  }

  deliver(topic: string, payload: unknown): void {
    const listeners = this.#listeners.get(topic);
    if (!listeners) return;
    for (const listener of [...listeners]) {
      // One removed by an earlier listener of this same event hears no more.
      if (!listeners.has(listener)) continue;
      try {
        listener(payload);
      } catch (error) {
        this.#log.error({ err: error, topic }, `pub/sub: a listener of ${topic} failed`);
      }
    }
  }

  /**
   * The topic's events as an async iterator, listening from this call on (not from the first
   * `next()`), so that nothing published in between is missed. `return()` stops it.
   */
  iterate(topic: string): AsyncIterableIterator<unknown> {
    const buffered: unknown[] = [];
    const waiting: ((result: IteratorResult<unknown>) => void)[] = [];
    let ended = false;
    let overflowLogged = false;
    const off = this.add(topic, (payload) => {
      const reader = waiting.shift();
      if (reader) {
        reader({ value: payload, done: false });
        return;
      }
      if (buffered.length >= MAX_BUFFERED_EVENTS) {
        buffered.shift();
        if (!overflowLogged) {
          overflowLogged = true;
          this.#log.warn(
            { topic, buffered: MAX_BUFFERED_EVENTS },
            `pub/sub: a subscriber of ${topic} fell behind; dropping its oldest events`,
          );
        }
      }
      buffered.push(payload);
    });
    const end = () => {
      if (ended) return;
      ended = true;
      off();
      buffered.length = 0;
      this.#iterators.delete(end);
      for (const reader of waiting.splice(0)) reader({ value: undefined, done: true });
    };
    this.#iterators.add(end);
    const iterator: AsyncIterableIterator<unknown> = {
      next() {
        if (buffered.length > 0) return Promise.resolve({ value: buffered.shift(), done: false });
        if (ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => waiting.push(resolve));
      },
      return() {
        end();
        return Promise.resolve({ value: undefined, done: true });
      },
      throw(error?: unknown) {
        end();
        return Promise.reject(error);
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Ends every subscription iterator: their `for await` loops complete. */
  close(): void {
    for (const end of [...this.#iterators]) end();
  }
}
