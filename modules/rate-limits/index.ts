import { defineModule, type RequestContext } from '../../src/index.ts';
import users from '../users/index.ts';
import { rateLimitsConfig } from './config.ts';
import { RateCounterSchema } from './entities.ts';
import { consume, guardFailures, ipOf, isCode, notAGuess, USER_CODE_FAILURES } from './flows.ts';

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
