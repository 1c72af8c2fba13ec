import type { ModuleInstance, Runtime } from '../../src/index.ts';
import {
  type AcquireRequest,
  acquire,
  type HeldLease,
  type LeaseCounts,
  ReleaseWaiters,
  releaseOnRevocation,
  withLease,
} from './service.ts';

/** The leases module in one gateway: its waiting acquirers, and the release of ended holders' leases. */
export class Leases implements ModuleInstance {
  readonly #runtime: Runtime;
  readonly #waiters = new ReleaseWaiters();
  readonly #counts: LeaseCounts;
  #stops: (() => Promise<void> | void)[] = [];

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
    // Fence rejections are the store's to count (portico_lease_fence_rejections_total): it checks
    // the fences of every module's writes.
    this.#counts = {
      grants: runtime.metrics.counter({
        name: 'portico_lease_grants_total',
        help: 'Leases granted by this gateway (acquireLease, withLease)',
      }),
      waits: runtime.metrics.counter({
        name: 'portico_lease_waits_total',
        help: 'Acquisitions that found the lease held and waited for it',
      }),
    };
  }

  start() {
    this.#stops.push(this.#waiters.listen(this.#runtime.store.events), releaseOnRevocation(this.#runtime));
  }

  async stop() {
    for (const stop of this.#stops.splice(0)) await stop();
  }

  /** Whether an acquirer waits here for the lease on `key`. */
  isAwaited(key: string): boolean {
    return this.#waiters.has(key);
  }

  /** Acquires a lease, waiting up to `request.waitMs` for it to become free; null when it stays held. */
  acquire(request: AcquireRequest) {
    return acquire(this.#runtime, this.#waiters, this.#counts, request);
  }

  /**
   * Runs `fn` holding the lease on `key` (as the server, not a user), renewing it while `fn` runs
   * and releasing it after. Throws CONFLICT when the lease stays held by another holder past
   * `waitSeconds`. Pass `lease.token` as the fence of the writes `fn` makes.
   */
  withLease<T>(
    key: string,
    options: { ttlSeconds: number; waitSeconds?: number },
    fn: (lease: HeldLease) => Promise<T>,
  ): Promise<T> {
    return withLease(this.#runtime, this.#waiters, this.#counts, key, options, fn);
  }
}
