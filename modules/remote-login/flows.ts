import { PorticoError } from '../../src/index.ts';
import type { LoginMethod } from '../sessions/index.ts';
import { askRemote, upsertRemoteUser } from './service.ts';

/** The `remote` method: the credentials go to `remoteLogin.endpoint`, which names the user. */
export const remoteMethod: LoginMethod = {
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
