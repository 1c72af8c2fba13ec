import { randomBytes } from 'node:crypto';
import type { EntityManager, FilterQuery } from '@mikro-orm/core';
import { randomSecret, sameDigest, sha256 } from '../../src/index.ts';
import { ApiKey } from './entities.ts';

export const KEY_NAME_MAX = 100;
/** Active keys a user may hold: bounds `viewer.apiKeys` and the damage of a leaked session. */
export const MAX_ACTIVE_KEYS = 100;

const KEY_FORMAT = /^pk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** What the GraphQL `ApiKey` type reads: an entity or a plain copy. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly secretHash: string;
  readonly scopes: readonly string[];
  readonly createdAt: Date;
  readonly lastUsedAt?: Date | null;
  readonly expiresAt?: Date | null;
  readonly revokedAt?: Date | null;
}

export const apiKeyRecord = (key: ApiKeyRecord): ApiKeyRecord => ({
  id: key.id,
  userId: key.userId,
  name: key.name,
  secretHash: key.secretHash,
  scopes: [...key.scopes],
  createdAt: key.createdAt,
  lastUsedAt: key.lastUsedAt ?? null,
  expiresAt: key.expiresAt ?? null,
  revokedAt: key.revokedAt ?? null,
});

/** The printable start of a key: enough to recognise it, nothing that opens it. */
export const prefixOf = (key: Pick<ApiKeyRecord, 'id'>) => `pk_${key.id}`;

/** Splits a presented key; null for anything that is not one. */
export function parseKey(presented: string): { id: string; secret: string } | null {
  const match = KEY_FORMAT.exec(presented);
  return match ? { id: match[1]!, secret: match[2]! } : null;
}

/** Constant-time check of a presented secret against the stored hash. */
export const secretMatches = (key: Pick<ApiKeyRecord, 'secretHash'>, secret: string) =>
  sameDigest(sha256(secret), key.secretHash);

export const isUsable = (key: Pick<ApiKeyRecord, 'revokedAt' | 'expiresAt'>, now: number) =>
  !key.revokedAt && (!key.expiresAt || key.expiresAt.getTime() > now);

export interface NewApiKey {
  userId: string;
  name: string;
  scopes: readonly string[];
  expiresAt: Date | null;
}

/** Creates a key; the whole key is returned once and never stored. Flushes. */
export async function createApiKey(em: EntityManager, input: NewApiKey) {
  const id = randomBytes(8).toString('hex');
  const secret = randomSecret();
  const key = em.create(ApiKey, {
    id,
    userId: input.userId,
    name: input.name,
    secretHash: sha256(secret),
    scopes: [...new Set(input.scopes)].sort(),
    createdAt: new Date(),
    lastUsedAt: null,
    expiresAt: input.expiresAt,
    revokedAt: null,
    revokedReason: null,
  });
  await em.flush();
  return { key, secret: `pk_${id}_${secret}` };
}

export const findApiKey = (em: EntityManager, id: string) => em.findOne(ApiKey, { id });

export async function loadApiKeys(em: EntityManager, ids: readonly string[]): Promise<(ApiKey | null)[]> {
  const keys = await em.find(ApiKey, { id: { $in: [...new Set(ids)] } });
  const byId = new Map(keys.map((key) => [key.id, key]));
  return ids.map((id) => byId.get(id) ?? null);
}

/** A user's keys that are not revoked, newest first. */
export const listActiveKeys = (em: EntityManager, userId: string) =>
  em.find(
    ApiKey,
    { userId, revokedAt: null },
    { orderBy: { createdAt: 'desc', id: 'desc' }, limit: MAX_ACTIVE_KEYS },
  );

export const countActiveKeys = (em: EntityManager, userId: string, now: Date) =>
  em.count(ApiKey, {
    userId,
    revokedAt: null,
    $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }],
  });

/** Revokes the unrevoked keys matching `where`; returns the keys this call revoked. */
export async function revokeApiKeys(
  em: EntityManager,
  where: FilterQuery<ApiKey>,
  reason: string,
): Promise<{ id: string; userId: string }[]> {
  const targets = await em.find(ApiKey, { $and: [where, { revokedAt: null }] }, { fields: ['id', 'userId'] });
  if (targets.length === 0) return [];
  const ids = targets.map((key) => key.id);
  await em.nativeUpdate(
    ApiKey,
    { id: { $in: ids }, revokedAt: null },
    { revokedAt: new Date(), revokedReason: reason },
  );
  return targets.map(({ id, userId }) => ({ id, userId }));
}

export const touchApiKey = (em: EntityManager, id: string, at: Date) =>
  em.nativeUpdate(ApiKey, { id, revokedAt: null }, { lastUsedAt: at });
