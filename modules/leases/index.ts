import { defineModule } from '../../src/index.ts';
import { LEASES_SCOPE } from './access.ts';
import { leasesConfig } from './config.ts';
import { FenceInput, registerLeases } from './graphql.ts';
import { Leases } from './instance.ts';

export type { Leases } from './instance.ts';
export type { HeldLease } from './service.ts';

/**
 * TTL locks with fencing tokens, in the store (`runtime.store.leases`): one lease per key whose
 * token only grows; acquire, renew and release are each one step of the store, on its clock;
 * leases end with the session or API key that holds them.
 */
export default defineModule({
  name: 'leases',
  dependsOn: ['users', 'sessions', 'api-keys', 'roles'],
  config: leasesConfig,
  graphql: registerLeases,
  scopes: () => [{ name: LEASES_SCOPE, grants: 'acquire, renew and release leases', everyone: true }],
  setup: (runtime) => new Leases(runtime),
  api: { FenceInput },
});
