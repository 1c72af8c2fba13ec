/** What graphql-ws and graphql-sse push results into. */
export interface Sink<T> {
  next(value: T): void;
  error(error: unknown): void;
  complete(): void;
}

/** Starts pushing into a sink; returns the function that stops it. */
export type Source<T> = (sink: Sink<T>) => () => void;

/**
 * Pulls a push-based subscription as an async iterator. Written out rather than using the
 * libraries' `iterate()` because `return()` (and the abort signal) must also end a `next()`
 * that is already waiting, which theirs leave pending until the next event.
 */
export function iterate<T>(source: Source<T>, signal?: AbortSignal): AsyncIterableIterator<T> {
  const queued: T[] = [];
  let failure: { error: unknown } | undefined;
  let ended = false;
  let stopSource: (() => void) | undefined;
  let wake = () => {};
  let changed = new Promise<void>((resolve) => (wake = resolve));
  const notify = () => {
    wake();
    changed = new Promise<void>((resolve) => (wake = resolve));
  };
  const end = () => {
    if (ended) return;
    ended = true;
    signal?.removeEventListener('abort', cancel);
    stopSource?.();
    notify();
  };
  const cancel = () => {
    queued.length = 0;
    end();
  };

  if (signal?.aborted) ended = true;
  else {
    signal?.addEventListener('abort', cancel, { once: true });
    stopSource = source({
      next: (value) => {
        if (ended) return;
        queued.push(value);
        notify();
      },
      error: (error) => {
        if (ended) return;
        failure = { error };
        end();
      },
      complete: end,
    });
    // The source may have ended while starting, before its stop function existed.
    if (ended) stopSource();
  }

  return {
    async next() {
      while (queued.length === 0 && !ended) await changed;
      if (queued.length > 0) return { value: queued.shift()!, done: false };
      if (failure) {
        const { error } = failure;
        failure = undefined;
        throw error;
      }
      return { value: undefined, done: true };
    },
    async return() {
      cancel();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
