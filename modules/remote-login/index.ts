import { defineModule } from '../../src/index.ts';
import sessions from '../sessions/index.ts';
import { remoteLoginConfig } from './config.ts';
import { RemoteIdentitySchema } from './entities.ts';
import { remoteMethod } from './flows.ts';

/** Delegated login: `logInWith(method: "remote", credentials)` asks `remoteLogin.endpoint`. */
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
