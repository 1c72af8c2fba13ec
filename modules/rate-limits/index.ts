import { defineModule, PorticoError, type RequestContext } from '../../src/index.ts';
import users from '../users/index.ts';
import { rateLimitsConfig } from './config.ts';
import { RateCounterSchema } from './entities.ts';
import {
  block,
  growingDelay,
  refundConsecutive,
  refundInWindow,
  reserveConsecutive,
  reserveInWindow,
  reset,
} from './service.ts';

const USER_CODE_FAILURES = 5;

const rateLimited = (retryAfterMs: number) => {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new PorticoError('RATE_LIMITED', `Too many attempts; try again in ${seconds} s.`, {
    retryAfter: seconds,
  });
};

const ipOf = (context: RequestContext) => context.ip ?? 'local';
const windowMs = (context: RequestContext) => context.runtime.settings.rateLimits.windowMinutes * 60_000;

// Refusals that prove no guess (a real token that lost a race or was used already): never counted.
const notGuesses = new WeakSet<object>();

/** Marks a refusal of the attempt as no guess, so it does not use up the client's budget. */
function notAGuess<E>(error: E): E {
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
async function guardFailures<T>(
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
async function consume(context: RequestContext, limits: { key: string; max: number }[]) {
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

const isCode =
  (...codes: string[]) =>
  (error: unknown) =>
    error instanceof PorticoError && codes.includes(error.code);

/**
 * Attempt limits shared by every instance (counters live in the system database).
 * Other modules wrap their credential checks with these.
 */
export default defineModule({
  name: 'rate-limits',
  dependsOn: ['users'],
  config: rateLimitsConfig,
  entities: { system: [RateCounterSchema] },
  api: {
    /**
     * A login with credentials for `account` (an email, a remote username, ...), counted against
     * the account as the lookup normalises it (`emailKey`), so spelling variants share a counter.
     */
    login: <T>(context: RequestContext, account: string, attempt: () => Promise<T>) =>
      guardFailures(context, 'login', users.api.emailKey(account), attempt, isCode('INVALID_CREDENTIALS')),
    /**
     * Redeeming a single-use token or code: failures are counted per IP (tokens have no account).
     * A refusal marked with `notAGuess` is not counted.
     */
    redeem: <T>(context: RequestContext, attempt: () => Promise<T>) =>
      guardFailures(context, 'redeem', null, attempt, isCode('INVALID_TOKEN')),
    /** Entering device user codes: 5 wrong codes per user (docs/security.md), then a growing delay. */
    userCode: <T>(context: RequestContext, userId: string, attempt: () => Promise<T>) =>
      guardFailures(context, 'usercode', userId, attempt, isCode('INVALID_TOKEN'), USER_CODE_FAILURES),
    signUp: (context: RequestContext) =>
      consume(context, [
        { key: `signup:ip:${ipOf(context)}`, max: context.runtime.settings.rateLimits.signUps },
      ]),
    loginLink: (context: RequestContext, address: string) => {
      const { loginLinks } = context.runtime.settings.rateLimits;
      return consume(context, [
        {
          key: `link:account:${users.api.emailKey(address).slice(0, 320)}:${ipOf(context)}`,
          max: loginLinks,
        },
        { key: `link:ip:${ipOf(context)}`, max: loginLinks * 6 },
      ]);
    },
    notAGuess,
  },
});
