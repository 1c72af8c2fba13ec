import {
  every,
  isDatabaseUnavailable,
  PorticoError,
  type Runtime,
  type Settings,
  type StoreEvents,
} from '../../src/index.ts';
import { apiKeyHolder, credentialsOf, serverHolder, sessionHolder } from './access.ts';

const MAX_KEY_LENGTH = 256;
const badInput = (message: string, field: string) => new PorticoError('BAD_USER_INPUT', message, { field });

/** Checks a key, TTL and wait against docs/configuration.md's limits; returns milliseconds. */
export function checkRequest(
  settings: Settings,
  { key, ttlSeconds, waitSeconds }: { key: string; ttlSeconds?: number; waitSeconds?: number | null },
) {
  const chars = [...key];
  // NUL cannot be stored in PostgreSQL text; other control characters would only confuse logs.
  if (chars.length < 1 || chars.length > MAX_KEY_LENGTH || chars.some((char) => char < ' ')) {
    throw badInput(`A lease key has 1 to ${MAX_KEY_LENGTH} printable characters.`, 'key');
  }
  const { maxTtlSeconds, maxWaitSeconds } = settings.leases;
  if (
    ttlSeconds !== undefined &&
    !(Number.isInteger(ttlSeconds) && ttlSeconds >= 1 && ttlSeconds <= maxTtlSeconds)
  ) {
    throw badInput(`ttlSeconds is 1 to ${maxTtlSeconds}.`, 'ttlSeconds');
  }
  const wait = waitSeconds ?? 0;
  if (!(Number.isInteger(wait) && wait >= 0 && wait <= maxWaitSeconds)) {
    throw badInput(`waitSeconds is 0 to ${maxWaitSeconds}.`, 'waitSeconds');
  }
  return { ttlMs: (ttlSeconds ?? 0) * 1000, waitMs: wait * 1000 };
}

export interface AcquireRequest {
  key: string;
  holder: string;
  ttlMs: number;
  /** How long to wait for the holder to release it or for it to expire; 0 tries once. */
  waitMs: number;
  /** Stops waiting (the client went away). */
  signal?: AbortSignal;
}

/** The counters of a gateway's leases (`portico_lease_grants_total`, `portico_lease_waits_total`). */
export interface LeaseCounts {
  grants: { inc(): void };
  /** Acquisitions that found the lease held and waited for it (once each, however often woken). */
  waits: { inc(): void };
}

/**
 * Acquires a lease, waiting up to `waitMs` for it to become free. While waiting it holds
 * no connection and no transaction: it sleeps until a release event for the key or the
 * current grant's expiry (by the database clock), whichever comes first, then tries again.
 * When the gateway begins to stop, it tries once more and answers.
 */
export async function acquire(
  runtime: Runtime,
  waiters: ReleaseWaiters,
  counts: LeaseCounts,
  request: AcquireRequest,
) {
  const { key, holder, ttlMs } = request;
  const { leases } = runtime.store;
  const granted = <T>(lease: T) => {
    if (lease) counts.grants.inc();
    return lease;
  };
  // Without a wait, one try: no watch to set up and take down.
  if (request.waitMs <= 0) return granted(await leases.acquire(key, holder, ttlMs));
  // The client going away, or the gateway stopping. (Listened to one by one: the request's signal
  // is whatwg-node's own, which AbortSignal.any refuses.)
  const signals = request.signal ? [request.signal, runtime.stopping] : [runtime.stopping];
  const aborted = () => signals.some((signal) => signal.aborted);
  const deadline = Date.now() + request.waitMs;
  let released = false;
  let wake = () => {};
  const stopWatching = waiters.watch(key, () => {
    released = true;
    wake();
  });
  let waited = false;
  try {
    for (;;) {
      released = false;
      const lease = await leases.acquire(key, holder, ttlMs);
      if (lease) return granted(lease);
      const left = deadline - Date.now();
      if (left <= 0 || aborted()) return null;
      const current = await leases.find(key);
      // An abort during the lookup fires no more events: try once more now instead of sleeping.
      if (released || !current || aborted()) continue;
      if (!waited) {
        waited = true;
        counts.waits.inc();
      }
      const untilFree = current.lease.expiresAt - current.now;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          for (const signal of signals) signal.removeEventListener('abort', done);
          resolve();
        };
        // One millisecond past expiry: at expiry itself the grant still stands.
        const timer = setTimeout(done, Math.min(left, untilFree + 1));
        for (const signal of signals) signal.addEventListener('abort', done, { once: true });
        wake = done;
      });
    }
  } finally {
    stopWatching();
  }
}

/**
 * The waiters of each key in one gateway, woken by a release on any instance: one store listener,
 * however many wait. It listens from the module's start, so that releases are heard before the
 * first wait. After a gap in the store's events every waiter tries again, since its release may
 * have been the lost event.
 */
export class ReleaseWaiters {
  readonly #byKey = new Map<string, Set<() => void>>();

  /** Listens to the store's events; returns the function that stops listening. */
  listen(events: StoreEvents): () => void {
    const wakeAll = (keys: Iterable<Set<() => void>>) => {
      for (const waiting of keys) for (const wake of waiting) wake();
    };
    const offReleased = events.on('lease.released', (event) =>
      wakeAll([this.#byKey.get(event.key) ?? new Set()]),
    );
    const offGap = events.onGap(() => wakeAll(this.#byKey.values()));
    return () => {
      offReleased();
      offGap();
    };
  }

  /** Whether an acquirer waits for the key here. */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** Calls `onRelease` when the key is released; returns the function that stops watching. */
  watch(key: string, onRelease: () => void): () => void {
    const forKey = this.#byKey.get(key) ?? new Set();
    this.#byKey.set(key, forKey);
    forKey.add(onRelease);
    return () => {
      forKey.delete(onRelease);
      if (forKey.size === 0 && this.#byKey.get(key) === forKey) this.#byKey.delete(key);
    };
  }
}

/** Extends a lease the holder still has; LEASE_LOST when that grant is over. */
export async function renew(
  runtime: Runtime,
  request: { key: string; holder: string; token: number; ttlMs: number },
) {
  const lease = await runtime.store.leases.renew(request.key, request.holder, request.token, request.ttlMs);
  if (!lease) {
    throw new PorticoError(
      'LEASE_LOST',
      `Lease "${request.key}" with token ${request.token} is not yours any more: it expired, was released, or was granted again.`,
      { key: request.key, token: request.token },
    );
  }
  return lease;
}

/** Releases a lease the holder still has (the store's release event wakes its waiters); false when that grant was already over. */
export const release = (runtime: Runtime, request: { key: string; holder: string; token: number }) =>
  runtime.store.leases.release(request.key, request.holder, request.token);

/** Ends the leases of these holders; the store's release events wake their waiters. */
async function releaseHolders(runtime: Runtime, holders: string[]) {
  await runtime.store.leases.releaseHeldBy(holders);
}

export interface HeldLease {
  key: string;
  token: number;
  /** Aborted when a renewal fails: the lease may be someone else's now, so stop and do not write. */
  signal: AbortSignal;
}

/**
 * For server-side code: runs `fn` while holding the lease (acquired as a server holder,
 * renewed every third of the TTL) and releases it when `fn` settles, success or failure.
 * Throws CONFLICT when the lease stays held by another holder past `waitSeconds`.
 * Pass `lease.token` as the fence of the writes `fn` makes.
 */
export async function withLease<T>(
  runtime: Runtime,
  waiters: ReleaseWaiters,
  counts: LeaseCounts,
  key: string,
  options: { ttlSeconds: number; waitSeconds?: number },
  fn: (lease: HeldLease) => Promise<T>,
): Promise<T> {
  const { ttlMs, waitMs } = checkRequest(runtime.settings, { key, ...options });
  const holder = serverHolder();
  const granted = await acquire(runtime, waiters, counts, { key, holder, ttlMs, waitMs });
  if (!granted) throw new PorticoError('CONFLICT', `Lease "${key}" is held by another holder.`, { key });
  const { token } = granted;
  const lost = new AbortController();
  let renewal: NodeJS.Timeout | undefined;
  const scheduleRenewal = () => {
    renewal = setTimeout(async () => {
      try {
        await renew(runtime, { key, holder, token, ttlMs });
        scheduleRenewal();
      } catch (error) {
        runtime.log.warn({ key, token, err: error }, 'lease renewal failed: signalling its holder');
        lost.abort(error);
      }
    }, ttlMs / 3);
  };
  scheduleRenewal();
  try {
    return await fn({ key, token, signal: lost.signal });
  } finally {
    clearTimeout(renewal);
    await release(runtime, { key, holder, token });
  }
}

/**
 * Ends the leases of ended credentials: at once on a revocation event, and by a periodic
 * sweep for what has no event (a session's timeout) or whose event was lost.
 * Returns the function that stops it, which resolves once the releases under way are done
 * (the databases close next).
 */
export function releaseOnRevocation(runtime: Runtime): () => Promise<void> {
  // An outage is logged once, by the database (src/outages.ts), not by every sweep.
  const onError = (error: unknown) => {
    if (!isDatabaseUnavailable(error)) {
      runtime.log.error({ err: error }, 'releasing leases of ended credentials failed');
    }
  };
  const releasing = new Set<Promise<void>>();
  const releaseNow = (holder: string) => {
    const release = releaseHolders(runtime, [holder])
      .catch(onError)
      .finally(() => releasing.delete(release));
    releasing.add(release);
  };
  const offSession = runtime.pubsub.on('session.revoked', ({ sessionId }) =>
    releaseNow(sessionHolder(sessionId)),
  );
  const offKey = runtime.pubsub.on('apiKey.revoked', ({ apiKeyId }) => releaseNow(apiKeyHolder(apiKeyId)));
  const sweep = every(runtime.settings.leases.sweepSeconds * 1000, () =>
    sweepEndedHolders(runtime).catch(onError),
  );
  return async () => {
    offSession();
    offKey();
    await sweep.stop();
    await Promise.all(releasing);
  };
}

/** One query for the live holders, one per credential kind for which still stand. */
async function sweepEndedHolders(runtime: Runtime) {
  const holders = await runtime.store.leases.liveHolders();
  const { sessionIds, apiKeyIds } = credentialsOf(holders);
  if (sessionIds.length === 0 && apiKeyIds.length === 0) return;
  const [endedSessions, endedKeys] = await Promise.all([
    runtime.live.findEnded('session', sessionIds),
    runtime.live.findEnded('apiKey', apiKeyIds),
  ]);
  const ended = [...[...endedSessions.keys()].map(sessionHolder), ...[...endedKeys.keys()].map(apiKeyHolder)];
  if (ended.length > 0) await releaseHolders(runtime, ended);
}
