import { defineModule } from '../../src/index.ts';
import sessions from '../sessions/index.ts';
import { endedKeys, resolveApiKeyViewer, revokeKeys, watchLiveKeys } from './credential.ts';
import { ApiKeySchema } from './entities.ts';
import { ApiKeyRef, registerApiKeys } from './graphql.ts';
import { createApiKey } from './service.ts';

const stopWatching = new WeakMap<object, () => Promise<void>>();

/**
 * API keys for programs: `Authorization: Bearer pk_…`, scopes a subset of the creator's,
 * stored hashed, shown once, revocable, optional expiry; disabling a user revokes them.
 */
export default defineModule({
  name: 'api-keys',
  dependsOn: ['sessions', 'users', 'roles', 'audit'],
  entities: { system: [ApiKeySchema] },
  credentials: resolveApiKeyViewer,
  graphql: registerApiKeys,
  start(runtime) {
    sessions.api.onUserDisabled(runtime, async (em, userId) => {
      await revokeKeys(runtime, em, { userId }, 'USER_DISABLED');
    });
    stopWatching.set(runtime, watchLiveKeys(runtime));
  },
  async stop(runtime) {
    await stopWatching.get(runtime)?.();
  },
  api: { ApiKeyRef, createApiKey, endedKeys, revokeKeys },
});
