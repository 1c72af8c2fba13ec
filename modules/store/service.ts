import type { EntityManager } from '@mikro-orm/core';
import { sealData, unsealData } from 'iron-session';
import { type Environment, sealPasswords } from '../../src/index.ts';
import { StoreChoice } from './entities.ts';

const NAME = 'store';

/** The URL an admin chose, unsealed; null when none stands (DATABASE_URL's store). */
export async function readChoice(
  em: EntityManager,
  env: Pick<Environment, 'secrets'>,
): Promise<string | null> {
  const row = await em.findOne(StoreChoice, { name: NAME });
  if (!row) return null;
  // Any of the secrets opens it, so that PORTICO_SECRET can rotate.
  const { url } = await unsealData<{ url?: string }>(row.sealedUrl, {
    password: sealPasswords(env.secrets).open,
    ttl: 0,
  });
  if (typeof url !== 'string') throw new Error('The chosen store cannot be read: PORTICO_SECRET has changed');
  return url;
}

/** Keeps `url` as the store of every instance (null: back to DATABASE_URL's). */
export async function saveChoice(em: EntityManager, env: Pick<Environment, 'secrets'>, url: string | null) {
  if (url === null) {
    await em.nativeDelete(StoreChoice, { name: NAME });
    return;
  }
  const sealedUrl = await sealData({ url }, { password: sealPasswords(env.secrets).seal, ttl: 0 });
  await em.upsert(StoreChoice, { name: NAME, sealedUrl, chosenAt: new Date() });
}
