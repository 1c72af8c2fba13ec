import { defineModule } from '../../src/index.ts';
import sessions, { type LoginMethod } from '../sessions/index.ts';
import { deviceConfig } from './config.ts';
import { DeviceAuthorizationSchema } from './entities.ts';
import { answer } from './flows.ts';
import { deviceRoutes } from './routes.ts';

/** The device method works through /oauth/* and the /device page, not `logInWith`. */
const deviceMethod: LoginMethod = { id: 'device' };

/**
 * OAuth 2.0 device authorization grant (RFC 8628) for CLIs: the access token is an
 * API key of the approving user, named after the client, revocable like any key.
 */
export default defineModule({
  name: 'device',
  dependsOn: ['sessions', 'users', 'roles', 'api-keys', 'rate-limits', 'audit'],
  config: deviceConfig,
  entities: { system: [DeviceAuthorizationSchema] },
  contributes: [sessions.api.loginMethods.with(deviceMethod)],
  setup: () => ({ routes: deviceRoutes }),
  graphql(builder) {
    builder.mutationFields((t) => ({
      approveDevice: t.boolean({
        description: 'Approves a pending device authorization (RFC 8628) for the viewer.',
        authScopes: { manageCredentials: true },
        args: { userCode: t.arg.string({ required: true }) },
        resolve: (_root, { userCode }, context) => answer(context, userCode, true),
      }),
      denyDevice: t.boolean({
        authScopes: { manageCredentials: true },
        args: { userCode: t.arg.string({ required: true }) },
        resolve: (_root, { userCode }, context) => answer(context, userCode, false),
      }),
    }));
  },
});
