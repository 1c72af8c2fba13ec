import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/** The header that carries a request's id, in and out. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * An incoming id is kept when it is 1–128 characters of a set that proxies' ids (UUIDs, hex,
 * base64, `host:port/seq`) use and that cannot break a log line or a header.
 */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/**
 * A new request id: a random UUID, the shape Envoy and most proxies give theirs, and unique
 * across instances without coordination. Node draws them from a cached pool of random bytes.
 */
export const newRequestId = (): string => randomUUID();

/** The id of a request: the `x-request-id` it came with when that is sane, else a new one. */
export function requestIdFor(incoming: string | null | undefined): string {
  return incoming && SANE_REQUEST_ID.test(incoming) ? incoming : newRequestId();
}

const scope = new AsyncLocalStorage<string>();

/**
 * Runs `work` as part of the request `requestId`: whatever it logs, also in the promises and
 * callbacks it starts, carries the id (the logger reads it with `currentRequestId`).
 */
export function inRequestScope<T>(requestId: string, work: () => T): T {
  return scope.run(requestId, work);
}

/**
 * Runs `work` outside any request, whatever called it: for work a request only happened to set
 * off (a batch of spans sent to the collector), whose log lines are no request's.
 */
export function outsideRequests<T>(work: () => T): T {
  return scope.exit(work);
}

/** The id of the request whose work is running; undefined outside any (startup, background jobs). */
export function currentRequestId(): string | undefined {
  return scope.getStore();
}

/**
 * The iterable, its steps run in the async context this is called in (the request's id, an active
 * span): a consumer that pulls from its own context (graphql-ws, a response stream) would run
 * them outside it.
 */
export function pulledHere<T>(iterable: AsyncIterable<T>): AsyncIterableIterator<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  const here = AsyncLocalStorage.snapshot();
  return {
    next: () => here(() => iterator.next()),
    // graphql-ws ends an operation (a `complete` message, a closed socket) through `return`.
    return: (value) => here(() => iterator.return?.(value) ?? Promise.resolve({ done: true, value })),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
