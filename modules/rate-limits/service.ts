import { type EntityManager, raw, UniqueConstraintViolationException } from '@mikro-orm/core';
import { RateCounter } from './entities.ts';

/** The longest wait a growing delay reaches. */
export const MAX_DELAY_MS = 15 * 60_000;
const FIRST_DELAY_MS = 30_000;

/** Seconds until every counter of `keys` lets attempts through; 0 when none blocks. */
export async function blockedFor(
  em: EntityManager,
  keys: readonly string[],
  now = new Date(),
): Promise<number> {
  const counters = await em.find(RateCounter, { key: { $in: [...keys] }, blockedUntil: { $gt: now } });
  const until = Math.max(0, ...counters.map((counter) => counter.blockedUntil!.getTime()));
  return until > 0 ? Math.ceil((until - now.getTime()) / 1000) : 0;
}

/**
 * Adds one to a counter in one statement (a fresh window when the old one ended; no
 * window: counts until reset) and returns the new count. Creating the row races
 * safely: a unique violation retries.
 */
export async function increment(
  em: EntityManager,
  key: string,
  windowMs: number | null,
  now = new Date(),
): Promise<number> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const fresh =
      windowMs === null
        ? 0
        : await em.nativeUpdate(
            RateCounter,
            { key, windowStartedAt: { $lte: new Date(now.getTime() - windowMs) } },
            { count: 1, windowStartedAt: now, blockedUntil: null },
          );
    if (fresh === 0) {
      const grown = await em.nativeUpdate(RateCounter, { key }, { count: raw('count + 1') });
      if (grown === 0) {
        try {
          await em.insert(RateCounter, { key, count: 1, windowStartedAt: now, blockedUntil: null });
          return 1;
        } catch (error) {
          if (error instanceof UniqueConstraintViolationException) continue;
          throw error;
        }
      }
    }
    const counter = await em.fork().findOne(RateCounter, { key });
    return counter?.count ?? 1;
  }
  throw new Error(`rate counter ${key} could not be updated`);
}

export const block = (em: EntityManager, key: string, until: Date) =>
  em.nativeUpdate(RateCounter, { key }, { blockedUntil: until });

export const reset = (em: EntityManager, key: string) => em.nativeDelete(RateCounter, { key });

/** 30 s after the limit is reached, doubling with every further failure, at most 15 min. */
export const growingDelay = (failuresPastLimit: number) =>
  Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.max(0, failuresPastLimit));
