import { defineModule } from '../../src/index.ts';
import {
  BOOTSTRAP_PURPOSE,
  endedSessions,
  issueBootstrapLink,
  onUserDisabled,
  resolveSessionViewer,
  revoke,
  startSession,
  watchLiveSessions,
  writeDueUses,
} from './authn.ts';
import { BUILTIN_METHODS, sessionsConfig } from './config.ts';
import { SessionSchema, SystemFlagSchema, Token, TokenSchema } from './entities.ts';
import { passwordMethod, redeemBootstrap, registerTokenPurpose } from './flows.ts';
import { registerSessions, SessionRef, ViewerRef } from './graphql.ts';
import { enabledMethods, isMethodEnabled, providedMethods } from './methods.ts';
import { sessionRoutes } from './routes.ts';
import { consumeToken, issueToken } from './service.ts';

export type { RevocationReason } from './entities.ts';
export type { Profile, TokenRedeemer } from './flows.ts';
export type { LoginMethod } from './methods.ts';

const stopWatching = new WeakMap<object, () => Promise<void>>();
const stopWriting = new WeakMap<object, () => Promise<void>>();

/**
 * Revocable cookie sessions (iron-sealed id + secret, checked against the sessions
 * table), single-use tokens, first-admin bootstrap, and the account mutations.
 */
export default defineModule({
  name: 'sessions',
  dependsOn: ['users', 'roles', 'rate-limits', 'audit'],
  config: sessionsConfig,
  checkConfig(settings, modules) {
    const known = new Set<string>([...BUILTIN_METHODS, ...providedMethods(modules).keys()]);
    return settings.methods.flatMap((method, i) =>
      known.has(method)
        ? []
        : [`methods.${i}: unknown login method "${method}" (known: ${[...known].join(', ')})`],
    );
  },
  entities: { system: [SessionSchema, TokenSchema, SystemFlagSchema] },
  credentials: resolveSessionViewer,
  routes: sessionRoutes,
  graphql: registerSessions,
  async start(runtime) {
    registerTokenPurpose(BOOTSTRAP_PURPOSE, redeemBootstrap);
    const enabled = enabledMethods(runtime).map((method) => method.id);
    const unavailable = runtime.settings.methods.filter((method) => !enabled.includes(method));
    if (unavailable.length > 0) {
      runtime.log.warn({ methods: unavailable }, 'login methods configured but not available in this build');
    }
    stopWatching.set(runtime, watchLiveSessions(runtime));
    stopWriting.set(runtime, writeDueUses(runtime));
    const link = await issueBootstrapLink(runtime);
    if (link) runtime.log.info({ bootstrap: true }, `No admin yet. Create the first admin here: ${link}`);
  },
  async stop(runtime) {
    await stopWatching.get(runtime)?.();
    await stopWriting.get(runtime)?.();
  },
  commands: {
    bootstrap: {
      description: 'Print a fresh single-use link that creates the first admin (while none exists).',
      async run(runtime) {
        const link = await issueBootstrapLink(runtime);
        if (!link) {
          process.stderr.write('An admin exists: bootstrap is closed.\n');
          return 1;
        }
        process.stdout.write(`${link}\n`);
        return 0;
      },
    },
  },
  api: {
    endedSessions,
    loginMethod: passwordMethod,
    Token,
    SessionRef,
    ViewerRef,
    issueBootstrapLink,
    isMethodEnabled,
    issueToken,
    consumeToken,
    onUserDisabled,
    registerTokenPurpose,
    revoke,
    startSession,
  },
});
