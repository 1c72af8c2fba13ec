import { PorticoError, type RequestContext } from '../../src/index.ts';
import {
  block,
  growingDelay,
  refundConsecutive,
  refundInWindow,
  reserveConsecutive,
  reserveInWindow,
  reset,
} from './service.ts';

export const USER_CODE_FAILURES = 5;

const rateLimited = (retryAfterMs: number) => {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new PorticoError('RATE_LIMITED', `Too many attempts; try again in ${seconds} s.`, {
    retryAfter: seconds,
  });
};

export const ipOf = (context: RequestContext) => context.ip ?? 'local';
const windowMs = (context: RequestContext) => context.runtime.settings.rateLimits.windowMinutes * 60_000;

// Refusals that prove no guess (a real token that lost a race or was used already): never counted.
const notGuesses = new WeakSet<object>();

/** Marks a refusal of the attempt as no guess, so it does not use up the client's budget. */
export function notAGuess<E>(error: E): E {
  if (typeof error === 'object' && error !== null) notGuesses.add(error);
  return error;
}

/**
 * Runs a credential check under the failure limits (docs/security.md): per account and IP,
 * `accountLimit` consecutive failures start a growing delay; per IP, `ipFailures` failures in
 * a window refuse that IP until the window ends. Each attempt is counted before it runs
 * (N attempts at once count N), then counted as a failure only if it is one: a success or
 * any other error gives its reservation back, and a success clears the account's counter.
 */
export async function guardFailures<T>(
  context: RequestContext,
  action: string,
  account: string | null,
  attempt: () => Promise<T>,
  isFailure: (error: unknown) => boolean,
  accountLimit = context.runtime.settings.rateLimits.accountFailures,
): Promise<T> {
  const { db, runtime } = context;
  const em = db.system;
  const ip = ipOf(context);
  const now = runtime.clock.now();

  let held: { key: string; count: number } | null = null;
  if (account !== null) {
    const key = `${action}:account:${account.slice(0, 320)}:${ip}`;
    const reservation = await reserveConsecutive(em, key, accountLimit, now);
    if (!reservation.reserved) throw rateLimited(reservation.retryAfterMs);
    held = { key, count: reservation.count };
  }
  const giveBackAccount = async () => {
    if (held) await refundConsecutive(em, held.key, held.count >= accountLimit);
  };
  const ipKey = `${action}:ip:${ip}`;
  const counted = await reserveInWindow(
    em,
    ipKey,
    runtime.settings.rateLimits.ipFailures,
    windowMs(context),
    now,
  );
  if (!counted.reserved) {
    await giveBackAccount();
    throw rateLimited(counted.retryAfterMs);
  }

  let result: T;
  try {
    result = await attempt();
  } catch (error) {
    if (isFailure(error) && !notGuesses.has(error as object)) {
      // Already counted; past the limit the failure also sets the next delay.
      if (held && held.count >= accountLimit) {
        await block(em, held.key, runtime.clock.now() + growingDelay(held.count - accountLimit));
      }
    } else {
      await giveBackAccount();
      await refundInWindow(em, ipKey, counted);
    }
    throw error;
  }
  if (held) await reset(em, held.key);
  await refundInWindow(em, ipKey, counted);
  return result;
}

/** Counts an attempt against per-window limits (sign-ups, login links); refuses past any of them. */
export async function consume(context: RequestContext, limits: { key: string; max: number }[]) {
  const { db, runtime } = context;
  const now = runtime.clock.now();
  const taken: { key: string; windowStartedAt: number }[] = [];
  for (const { key, max } of limits) {
    const reservation = await reserveInWindow(db.system, key, max, windowMs(context), now);
    if (!reservation.reserved) {
      // The limits that did not refuse owe nothing for an attempt that never ran.
      for (const earlier of taken) await refundInWindow(db.system, earlier.key, earlier);
      throw rateLimited(reservation.retryAfterMs);
    }
    taken.push({ key, windowStartedAt: reservation.windowStartedAt });
  }
}

export const isCode =
  (...codes: string[]) =>
  (error: unknown) =>
    error instanceof PorticoError && codes.includes(error.code);
