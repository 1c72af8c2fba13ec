import { defineModule } from '../../src/index.ts';
import users from '../users/index.ts';
import { ApiKeySchema } from './entities.ts';
import { ApiKeyRef, registerApiKeys } from './graphql.ts';
import { ApiKeys } from './instance.ts';
import { createApiKey, loadApiKeys } from './service.ts';

export type { ApiKeys } from './instance.ts';

/**
 * API keys for programs: `Authorization: Bearer pk_…`, scopes a subset of the creator's,
 * stored hashed, shown once, revocable, optional expiry; disabling a user revokes them.
 */
export default defineModule({
  name: 'api-keys',
  dependsOn: ['sessions', 'users', 'roles', 'audit'],
  entities: { system: [ApiKeySchema] },
  setup(runtime) {
    const apiKeys = new ApiKeys(runtime);
    return Object.assign(apiKeys, {
      contributes: [
        users.api.userLifecycle.with({
          disabled: async ({ db }, userId) => {
            await apiKeys.revokeKeys(db.system, { userId }, 'USER_DISABLED');
          },
        }),
      ],
    });
  },
  graphql: registerApiKeys,
  api: { ApiKeyRef, createApiKey, loadApiKeys },
});
