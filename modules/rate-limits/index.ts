import { defineModule, PorticoError, type RequestContext } from '../../src/index.ts';
import { rateLimitsConfig } from './config.ts';
import { RateCounterSchema } from './entities.ts';
import { block, blockedFor, growingDelay, increment, reset } from './service.ts';

const USER_CODE_FAILURES = 5;

const rateLimited = (seconds: number) =>
  new PorticoError('RATE_LIMITED', `Too many attempts; try again in ${seconds} s.`, { retryAfter: seconds });

const ipOf = (context: RequestContext) => context.ip ?? 'local';
const windowMs = (context: RequestContext) => context.runtime.settings.rateLimits.windowMinutes * 60_000;

/** Refuses the attempt while any of the keys is blocked. */
async function refuseIfBlocked(context: RequestContext, keys: string[]) {
  const seconds = await blockedFor(context.db.system, keys);
  if (seconds > 0) throw rateLimited(seconds);
}

/**
 * Runs a credential check under the failure limits (SECURITY.md): per account and IP,
 * `accountFailures` consecutive failures start a growing delay; per IP, `ipFailures`
 * failures in a window block the IP until the window ends. A success clears the
 * account's counter. Each call is one attempt, so aliases each count.
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
  const limits = runtime.settings.rateLimits;
  const ip = ipOf(context);
  const accountKey =
    account === null ? null : `${action}:account:${account.toLowerCase().slice(0, 320)}:${ip}`;
  const ipKey = `${action}:ip:${ip}`;
  await refuseIfBlocked(context, accountKey ? [accountKey, ipKey] : [ipKey]);
  try {
    const result = await attempt();
    if (accountKey) await reset(db.system, accountKey);
    return result;
  } catch (error) {
    if (!isFailure(error)) throw error;
    const now = new Date();
    const accountFailures = accountKey ? await increment(db.system, accountKey, null) : 0;
    if (accountKey && accountFailures >= accountLimit) {
      await block(
        db.system,
        accountKey,
        new Date(now.getTime() + growingDelay(accountFailures - accountLimit)),
      );
    }
    const ipFailures = await increment(db.system, ipKey, windowMs(context));
    if (ipFailures >= limits.ipFailures)
      await block(db.system, ipKey, new Date(now.getTime() + windowMs(context)));
    throw error;
  }
}

/** Counts an attempt against per-window limits (sign-ups, login links); refuses past any of them. */
async function consume(context: RequestContext, limits: { key: string; max: number }[]) {
  await refuseIfBlocked(
    context,
    limits.map(({ key }) => key),
  );
  const now = new Date();
  for (const { key, max } of limits) {
    const count = await increment(context.db.system, key, windowMs(context), now);
    if (count > max) {
      await block(context.db.system, key, new Date(now.getTime() + windowMs(context)));
      throw rateLimited(Math.ceil(windowMs(context) / 1000));
    }
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
  config: rateLimitsConfig,
  entities: { system: [RateCounterSchema] },
  api: {
    /** A login with credentials for `account` (an email, a remote username, ...). */
    login: <T>(context: RequestContext, account: string, attempt: () => Promise<T>) =>
      guardFailures(context, 'login', account, attempt, isCode('INVALID_CREDENTIALS')),
    /** Redeeming a single-use token or code: failures are counted per IP (tokens have no account). */
    redeem: <T>(context: RequestContext, attempt: () => Promise<T>) =>
      guardFailures(context, 'redeem', null, attempt, isCode('INVALID_TOKEN')),
    /** Entering device user codes: 5 wrong codes per user (SECURITY.md), then a growing delay. */
    userCode: <T>(context: RequestContext, userId: string, attempt: () => Promise<T>) =>
      guardFailures(context, 'usercode', userId, attempt, isCode('INVALID_TOKEN'), USER_CODE_FAILURES),
    signUp: (context: RequestContext) =>
      consume(context, [
        { key: `signup:ip:${ipOf(context)}`, max: context.runtime.settings.rateLimits.signUps },
      ]),
    loginLink: (context: RequestContext, address: string) => {
      const { loginLinks } = context.runtime.settings.rateLimits;
      return consume(context, [
        { key: `link:account:${address.toLowerCase()}:${ipOf(context)}`, max: loginLinks },
        { key: `link:ip:${ipOf(context)}`, max: loginLinks * 6 },
      ]);
    },
  },
});
