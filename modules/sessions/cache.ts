import { LRUCache } from 'lru-cache';
import type { Clock, Viewer } from '../../src/index.ts';
import type { UserRecord } from '../users/index.ts';
import type { SessionRecord } from './service.ts';

/** A verified, active session with its user (plain copies, never entities), as the hot path needs it. */
export interface SessionSnapshot {
  readonly session: SessionRecord;
  readonly user: UserRecord;
  readonly viewer: Viewer;
}

const CAPACITY = 10_000;
// Snapshots are reloaded at least this often (and sooner when lastSeenAt is due: see authn.ts).
const SNAPSHOT_TTL_MS = 60_000;

/**
 * Bounded caches for the credential check: sealed cookie → verified session id
 * (skips the ~0.1 ms unseal), and session id → snapshot (skips the database).
 * Revocation evicts the snapshot before it returns, so it takes effect at once.
 */
export class SessionCache {
  readonly #sessionIdBySeal = new LRUCache<string, string>({ max: CAPACITY });
  readonly #snapshots: LRUCache<string, SessionSnapshot>;

  constructor(clock: Clock) {
    this.#snapshots = new LRUCache({ max: CAPACITY, ttl: SNAPSHOT_TTL_MS, perf: clock });
  }

  sessionIdOf(sealed: string): string | undefined {
    return this.#sessionIdBySeal.get(sealed);
  }

  /** Call only once the seal's secret matched the row. */
  rememberSeal(sealed: string, sessionId: string): void {
    this.#sessionIdBySeal.set(sealed, sessionId);
  }

  forgetSeal(sealed: string): void {
    this.#sessionIdBySeal.delete(sealed);
  }

  snapshot(sessionId: string): SessionSnapshot | undefined {
    return this.#snapshots.get(sessionId);
  }

  store(snapshot: SessionSnapshot): void {
    this.#snapshots.set(snapshot.session.id, snapshot);
  }

  evictSession(sessionId: string): void {
    this.#snapshots.delete(sessionId);
  }

  /** After a pub/sub gap (revocations may have been missed): every session reloads on next use. */
  evictAll(): void {
    this.#snapshots.clear();
  }

  /** After a change to the user (name, roles, ...): their sessions reload on next use. */
  evictUser(userId: string): void {
    for (const [id, snapshot] of this.#snapshots.entries()) {
      if (snapshot.user.id === userId) this.#snapshots.delete(id);
    }
  }
}
