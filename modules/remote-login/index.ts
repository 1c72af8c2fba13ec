import { defineModule, PorticoError } from '../../src/index.ts';
import sessions, { type LoginMethod } from '../sessions/index.ts';
import { remoteLoginConfig } from './config.ts';
import { RemoteIdentitySchema } from './entities.ts';
import { askRemote, upsertRemoteUser } from './service.ts';

/** Delegated login: `logInWith(method: "remote", credentials)` asks `remoteLogin.endpoint`. */
const remoteMethod: LoginMethod = {
  id: 'remote',
  async logIn({ runtime, db }, credentials) {
    const { endpoint, timeoutMs } = runtime.settings.remoteLogin;
    if (!endpoint) throw new PorticoError('FORBIDDEN', 'Remote login has no endpoint configured.');
    const remote = await askRemote(endpoint, timeoutMs, credentials);
    const { linkByEmail } = runtime.settings.remoteLogin;
    const user = await db.system.transactional((em) =>
      upsertRemoteUser(em, remote, { defaultRoles: runtime.settings.defaultRoles, linkByEmail }),
    );
    if (user.disabled) throw new PorticoError('INVALID_CREDENTIALS', 'Invalid credentials.');
    return { userId: user.id };
  },
};

export default defineModule({
  name: 'remote-login',
  dependsOn: ['sessions', 'users'],
  config: remoteLoginConfig,
  checkConfig: (settings) =>
    settings.methods.includes('remote') && !settings.remoteLogin.endpoint
      ? ['remoteLogin.endpoint: required when methods include "remote"']
      : [],
  entities: { system: [RemoteIdentitySchema] },
  contributes: [sessions.api.loginMethods.with(remoteMethod)],
});
