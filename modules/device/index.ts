import { defineModule } from '../../src/index.ts';
import sessions, { type LoginMethod } from '../sessions/index.ts';
import { deviceConfig } from './config.ts';
import { DeviceAuthorizationSchema } from './entities.ts';
import { registerDevice } from './graphql.ts';
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
  graphql: registerDevice,
});
