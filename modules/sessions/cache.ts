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

/** A use of a session not written to its row yet: the newest one, and when it must be written. */
export interface UnwrittenUse {
  readonly at: number;
  readonly dueAt: number;
}

const CAPACITY = 10_000;
// Snapshots are reloaded at least this often (and sooner when lastSeenAt is due: see instance.ts).
const SNAPSHOT_TTL_MS = 60_000;

/**
 * Bounded caches for the credential check: sealed cookie → verified session id
 * (skips the ~0.1 ms unseal), and session id → snapshot (skips the database).
 * Revocation evicts the snapshot before it returns, so it takes effect at once.
 * Also the uses of sessions this instance has not written yet (see instance.ts): they
 * leave only once written, so they are not bounded by the capacity.
 */
export class SessionCache {
  readonly #sessionIdBySeal = new LRUCache<string, string>({ max: CAPACITY });
  readonly #snapshots: LRUCache<string, SessionSnapshot>;
  readonly #unwritten = new Map<string, UnwrittenUse>();

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

  /** The newest use of the session this instance knows: the row's lastSeenAt or a use not written yet. */
  lastUse(session: Pick<SessionRecord, 'id' | 'lastSeenAt'>): number {
    return Math.max(session.lastSeenAt.getTime(), this.#unwritten.get(session.id)?.at ?? 0);
  }

  /** Remembers a use that is not written now; it must be written by `dueAt`. */
  deferUse(sessionId: string, { at, dueAt }: UnwrittenUse): void {
    const known = this.#unwritten.get(sessionId);
    this.#unwritten.set(
      sessionId,
      known ? { at: Math.max(known.at, at), dueAt: Math.min(known.dueAt, dueAt) } : { at, dueAt },
    );
  }

  /** The row's lastSeenAt is now `at` or later: the uses up to it are written. */
  written(sessionId: string, at: number): void {
    const unwritten = this.#unwritten.get(sessionId);
    if (unwritten && unwritten.at <= at) this.#unwritten.delete(sessionId);
    const snapshot = this.#snapshots.peek(sessionId);
    if (snapshot && snapshot.session.lastSeenAt.getTime() < at) {
      // The next write of this session counts its quarter window from this one; the snapshot
      // still reloads when it was due to.
      this.#snapshots.set(
        sessionId,
        { ...snapshot, session: { ...snapshot.session, lastSeenAt: new Date(at) } },
        { noUpdateTTL: true },
      );
    }
  }

  /** Takes out, to write them, the unwritten uses due by `now` (all of them: `Infinity`). */
  takeUnwritten(now: number): Map<string, UnwrittenUse> {
    const due = new Map<string, UnwrittenUse>();
    for (const [id, use] of this.#unwritten) {
      if (use.dueAt > now) continue;
      due.set(id, use);
      this.#unwritten.delete(id);
    }
    return due;
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
