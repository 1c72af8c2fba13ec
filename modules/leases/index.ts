import { defineModule } from '../../src/index.ts';
import { LEASES_SCOPE } from './access.ts';
import { leasesConfig } from './config.ts';
import { LeaseSchema } from './entities.ts';
import { FenceInput, registerLeases } from './graphql.ts';
import { releaseOnRevocation, releaseWaiters, withLease } from './locks.ts';
import { checkFence } from './service.ts';

export type { HeldLease } from './locks.ts';
export type { Fence } from './service.ts';

/**
 * TTL locks with fencing tokens, in the business database: one row per key whose token
 * only grows; acquire, renew and release are single conditional statements on the
 * database clock; leases end with the session or API key that holds them.
 */
export default defineModule({
  name: 'leases',
  dependsOn: ['sessions', 'api-keys', 'roles'],
  config: leasesConfig,
  entities: { store: [LeaseSchema] },
  graphql: registerLeases,
  scopes: () => [{ name: LEASES_SCOPE, grants: 'acquire, renew and release leases', everyone: true }],
  setup(runtime) {
    let stopReleasing: (() => Promise<void>) | undefined;
    return {
      start() {
        releaseWaiters(runtime);
        stopReleasing = releaseOnRevocation(runtime);
      },
      stop: () => stopReleasing?.(),
    };
  },
  api: { FenceInput, checkFence, withLease },
});
