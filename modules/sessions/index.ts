import { defineModule } from '../../src/index.ts';
import users from '../users/index.ts';
import { sessionsConfig } from './config.ts';
import { SessionSchema, SystemFlagSchema, Token, TokenSchema } from './entities.ts';
import { loginMethods, tokenPurposes } from './extensions.ts';
import { passwordMethod, redeemBootstrap } from './flows.ts';
import { registerSessions, SessionRef, ViewerRef } from './graphql.ts';
import { BOOTSTRAP_PURPOSE, Sessions } from './instance.ts';
import { checkMethods } from './methods.ts';
import { sessionRoutes } from './routes.ts';
import { consumeToken, issueToken, loadSessions } from './service.ts';

export type { RevocationReason } from './entities.ts';
export type { LoginMethod, Profile, TokenPurpose, TokenRedeemer } from './extensions.ts';
export type { Sessions } from './instance.ts';

/**
 * Revocable cookie sessions (iron-sealed id + secret, checked against the sessions table),
 * single-use tokens, first-admin bootstrap, and the account mutations. Other modules plug in
 * login methods (`loginMethods`) and the redeemers of the tokens they issue (`tokenPurposes`).
 */
export default defineModule({
  name: 'sessions',
  dependsOn: ['users', 'roles', 'rate-limits', 'audit'],
  config: sessionsConfig,
  checkConfig: (settings, modules) => checkMethods(settings.methods, modules),
  entities: { system: [SessionSchema, TokenSchema, SystemFlagSchema] },
  contributes: [loginMethods.with(passwordMethod)],
  setup(runtime) {
    const sessions = new Sessions(runtime);
    return Object.assign(sessions, {
      routes: sessionRoutes(sessions),
      contributes: [
        tokenPurposes.with({ purpose: BOOTSTRAP_PURPOSE, redeem: redeemBootstrap(sessions) }),
        // A user who loses roles or is disabled signs in again (or not at all).
        users.api.userLifecycle.with({
          rolesChanged: async ({ db }, { userId }) => {
            await sessions.revoke(db.system, { userId }, 'ROLES_CHANGED');
          },
          disabled: async ({ db }, userId) => {
            await sessions.revoke(db.system, { userId }, 'USER_DISABLED');
          },
        }),
      ],
    });
  },
  graphql: registerSessions,
  commands: {
    bootstrap: {
      description: 'Print a fresh single-use link that creates the first admin (while none exists).',
      async run(sessions) {
        const link = await sessions.issueBootstrapLink();
        if (!link) {
          process.stderr.write('An admin exists: bootstrap is closed.\n');
          return 1;
        }
        process.stdout.write(`${link}\n`);
        return 0;
      },
    },
  },
  api: { loginMethods, tokenPurposes, Token, SessionRef, ViewerRef, issueToken, consumeToken, loadSessions },
});
