import { randomInt } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/core';
import { newId, randomSecret, sha256 } from '../../src/index.ts';
import { DeviceAuthorization } from './entities.ts';

/** RFC 8628 §6.1: no vowels (no words), no look-alikes; 20^8 ≈ 2.6·10^10 codes. */
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
export const DEVICE_CODE_TTL_SECONDS = 600;
export const SLOW_DOWN_SECONDS = 5;

export const formatUserCode = (code: string) => `${code.slice(0, 4)}-${code.slice(4)}`;

/** Case and dash insensitive: "bcdf-ghjk", "BCDFGHJK" and "bcdf ghjk" are one code. */
export function normalizeUserCode(input: string): string | null {
  const code = input.toUpperCase().replace(/[\s-]/g, '');
  return code.length === 8 && [...code].every((char) => USER_CODE_ALPHABET.includes(char)) ? code : null;
}

export async function startAuthorization(
  em: EntityManager,
  { clientId, scope, intervalSeconds }: { clientId: string; scope: string; intervalSeconds: number },
  now: Date,
) {
  const deviceCode = randomSecret();
  const userCode = Array.from(
    { length: 8 },
    () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)],
  ).join('');
  const row = em.create(DeviceAuthorization, {
    id: newId(),
    deviceCodeHash: sha256(deviceCode),
    userCode,
    clientId,
    scope,
    state: 'pending',
    userId: null,
    sessionId: null,
    createdAt: now,
    expiresAt: new Date(now.getTime() + DEVICE_CODE_TTL_SECONDS * 1000),
    intervalSeconds,
    lastPolledAt: null,
  });
  await em.flush();
  return { row, deviceCode, userCode };
}

/** The authorization a person's code names, pending and unexpired at `now`. */
export const findPending = (em: EntityManager, userCode: string, now: Date) =>
  em.findOne(DeviceAuthorization, { userCode, state: 'pending', expiresAt: { $gt: now } });

/** Approves or denies a pending authorization in one conditional update; false when it was not pending. */
export async function decide(
  em: EntityManager,
  id: string,
  decision: { state: 'approved' | 'denied'; userId: string; sessionId: string },
  now: Date,
) {
  const updated = await em.nativeUpdate(
    DeviceAuthorization,
    { id, state: 'pending', expiresAt: { $gt: now } },
    { state: decision.state, userId: decision.userId, sessionId: decision.sessionId },
  );
  return updated === 1;
}

export const findByDeviceCode = (em: EntityManager, deviceCode: string) =>
  /^[\w-]{43}$/.test(deviceCode)
    ? em.findOne(DeviceAuthorization, { deviceCodeHash: sha256(deviceCode) })
    : Promise.resolve(null);

/** Marks an approved authorization used; of concurrent polls exactly one gets `true`. */
export async function markUsed(em: EntityManager, id: string) {
  return (await em.nativeUpdate(DeviceAuthorization, { id, state: 'approved' }, { state: 'used' })) === 1;
}

export const recordPoll = (em: EntityManager, id: string, at: Date, intervalSeconds: number) =>
  em.nativeUpdate(DeviceAuthorization, { id }, { lastPolledAt: at, intervalSeconds });
