import type { EntityManager, FilterQuery } from '@mikro-orm/core';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import { dialectOf, newId, randomSecret, runStatement, sha256 } from '../../src/index.ts';
import type { SessionSettings } from './config.ts';
import type { SessionCredential } from './cookie.ts';
import { type RevocationReason, Session, SystemFlag, Token } from './entities.ts';

const USER_AGENT_MAX = 512;

/** What the GraphQL `Session` type reads: a `Session` entity or a plain copy of one. */
export interface SessionRecord {
  readonly id: string;
  readonly userId: string;
  readonly method: string;
  readonly createdAt: Date;
  readonly lastSeenAt: Date;
  readonly expiresAt: Date;
  readonly revokedAt?: Date | null;
  readonly revokedReason?: RevocationReason | null;
  readonly ip?: string | null;
  readonly userAgent?: string | null;
}

export const sessionRecord = (session: SessionRecord): SessionRecord => ({
  id: session.id,
  userId: session.userId,
  method: session.method,
  createdAt: session.createdAt,
  lastSeenAt: session.lastSeenAt,
  expiresAt: session.expiresAt,
  revokedAt: session.revokedAt ?? null,
  revokedReason: session.revokedReason ?? null,
  ip: session.ip ?? null,
  userAgent: session.userAgent ?? null,
});

export interface NewSession {
  userId: string;
  method: string;
  ip: string | null;
  userAgent: string | null;
}

/** Starts a session: 128-bit random id suffix, 256-bit secret; the row keeps only the secret's hash. */
export function createSession(
  em: EntityManager,
  input: NewSession,
  settings: SessionSettings,
  now: Date,
): { session: Session; credential: SessionCredential } {
  const credential = { id: newId(128), secret: randomSecret() };
  const session = em.create(Session, {
    id: credential.id,
    secretHash: sha256(credential.secret),
    userId: input.userId,
    method: input.method,
    createdAt: now,
    lastSeenAt: now,
    expiresAt: new Date(now.getTime() + settings.absoluteTimeoutHours * 3_600_000),
    revokedAt: null,
    revokedReason: null,
    ip: input.ip?.slice(0, 64) ?? null,
    userAgent: input.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
  });
  return { session, credential };
}

/** When the session stops working: the earlier of its absolute end and its idle end. */
export const effectiveExpiry = (
  session: Pick<SessionRecord, 'expiresAt' | 'lastSeenAt'>,
  settings: SessionSettings,
): Date =>
  new Date(
    Math.min(
      session.expiresAt.getTime(),
      session.lastSeenAt.getTime() + settings.idleTimeoutMinutes * 60_000,
    ),
  );

export const isActive = (
  session: Pick<SessionRecord, 'expiresAt' | 'lastSeenAt' | 'revokedAt'>,
  settings: SessionSettings,
  now: number,
) => !session.revokedAt && effectiveExpiry(session, settings).getTime() > now;

/** The sessions past either timeout at `now`: an expiry that a concurrent later use cannot race. */
export const endedBy = (settings: SessionSettings, now: number): FilterQuery<Session> => ({
  $or: [
    { expiresAt: { $lte: new Date(now) } },
    { lastSeenAt: { $lte: new Date(now - settings.idleTimeoutMinutes * 60_000) } },
  ],
});

export const findSession = (em: EntityManager, id: string) => em.findOne(Session, { id });

export async function loadSessions(em: EntityManager, ids: readonly string[]): Promise<(Session | null)[]> {
  const sessions = await em.find(Session, { id: { $in: [...new Set(ids)] } });
  const byId = new Map(sessions.map((session) => [session.id, session]));
  return ids.map((id) => byId.get(id) ?? null);
}

/** Sessions that are neither revoked nor past either timeout, newest first. */
export async function listActiveSessions(
  em: EntityManager,
  settings: SessionSettings,
  { userId, limit, after, now }: { userId?: string; limit: number; after?: string; now: number },
): Promise<Session[]> {
  return em.find(
    Session,
    {
      revokedAt: null,
      expiresAt: { $gt: new Date(now) },
      lastSeenAt: { $gt: new Date(now - settings.idleTimeoutMinutes * 60_000) },
      ...(userId ? { userId } : {}),
      ...(after ? { id: { $lt: after } } : {}),
    },
    { orderBy: { id: 'desc' }, limit },
  );
}

export interface Revoked {
  id: string;
  userId: string;
}

/**
 * Revokes the unrevoked sessions matching `where`, recording the reason.
 * Returns the sessions this call revoked (not those already revoked).
 */
export async function revokeSessions(
  em: EntityManager,
  where: FilterQuery<Session>,
  reason: RevocationReason,
  now: Date,
): Promise<Revoked[]> {
  const targets = await em.find(
    Session,
    { $and: [where, { revokedAt: null }] },
    { fields: ['id', 'userId'] },
  );
  if (targets.length === 0) return [];
  const ids = targets.map((session) => session.id);
  await em.nativeUpdate(
    Session,
    { id: { $in: ids }, revokedAt: null },
    { revokedAt: now, revokedReason: reason },
  );
  return targets.map(({ id, userId }) => ({ id, userId }));
}

/**
 * Moves the lastSeenAt of each unrevoked session forward to its use, in one statement: never
 * back, since another instance may have written a later use meanwhile.
 */
export function touchSessions(em: SqlEntityManager, uses: readonly (readonly [id: string, at: number])[]) {
  const postgres = dialectOf(em) === 'postgresql';
  // Dates are epoch milliseconds in SQLite (MikroORM's storage) and timestamptz in PostgreSQL.
  const [newer, time] = postgres ? ['greatest', 'cast(? as timestamptz)'] : ['max', '?'];
  const whens = uses.map(() => `when ? then ${time}`).join(' ');
  return runStatement(
    em,
    `update sessions set last_seen_at = ${newer}(last_seen_at, case id ${whens} end)
     where revoked_at is null and id in (${uses.map(() => '?').join(', ')})`,
    [...uses.flatMap(([id, at]) => [id, postgres ? new Date(at) : at]), ...uses.map(([id]) => id)],
  );
}

// ---------------------------------------------------------------- single-use tokens

export interface NewToken {
  purpose: string;
  /** Null: valid until used. */
  ttlSeconds: number | null;
  userId?: string | null;
  email?: string | null;
  data?: Record<string, unknown> | null;
}

/** Issues a 256-bit token bound to one purpose; only its SHA-256 is stored. Flushes. */
export async function issueToken(em: EntityManager, input: NewToken, now: Date) {
  const token = randomSecret();
  const row = em.create(Token, {
    id: newId(),
    hash: sha256(token),
    purpose: input.purpose,
    userId: input.userId ?? null,
    email: input.email ?? null,
    data: input.data ?? null,
    createdAt: now,
    expiresAt: input.ttlSeconds === null ? null : new Date(now.getTime() + input.ttlSeconds * 1000),
    usedAt: null,
    revokedAt: null,
  });
  await em.flush();
  return { token, row };
}

/** The row of a well-formed token, whatever its state: none means the token was never issued. */
export function findToken(em: EntityManager, token: string) {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return Promise.resolve(null);
  return em.findOne(Token, { hash: sha256(token) });
}

/** Not used, revoked or expired at `now`; redemption itself is `consumeToken`. */
export const isRedeemable = (row: Token, now: Date) =>
  !row.usedAt && !row.revokedAt && (!row.expiresAt || row.expiresAt.getTime() > now.getTime());

/** The token's row if it looks redeemable at `now`. */
export async function findUsableToken(em: EntityManager, token: string, now: Date) {
  const row = await findToken(em, token);
  return row && isRedeemable(row, now) ? row : null;
}

/**
 * Marks the token used in one conditional UPDATE: of any number of concurrent
 * redemptions exactly one sees `true`.
 */
export async function consumeToken(em: EntityManager, hash: string, purpose: string, now: Date) {
  const updated = await em.nativeUpdate(
    Token,
    { hash, purpose, usedAt: null, revokedAt: null, $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] },
    { usedAt: now },
  );
  return updated === 1;
}

// ---------------------------------------------------------------- installation flags

export const BOOTSTRAPPED = 'bootstrapped';

export const hasFlag = async (em: EntityManager, name: string) => (await em.count(SystemFlag, { name })) > 0;

/** Sets a one-way flag; false when it was already set (by this or a concurrent transaction). */
export async function setFlagOnce(em: EntityManager, name: string, value: string | null): Promise<boolean> {
  try {
    await em.insert(SystemFlag, { name, value, createdAt: new Date() });
    return true;
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) return false;
    throw error;
  }
}
