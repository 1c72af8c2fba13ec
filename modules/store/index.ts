import { defineModule, STORE_SERVE_SCOPE } from '../../src/index.ts';
import { StoreChoiceSchema } from './entities.ts';
import { registerStore } from './graphql.ts';
import { StoreAdmin } from './instance.ts';

/**
 * The store as admins run it: `storeBackend` says which backend holds the business data
 * (collections, blob metadata, leases), where, since when, and whether it answers now;
 * `switchStoreBackend`, `resetStoreBackend` and `reconnectStoreBackend` change it on every
 * instance while identity stays put. The choice is kept (sealed) in the system database, so a
 * restart or a new instance applies it too; each change is an audit event. And it serves this
 * gateway's store to other gateways whose key holds `store:serve` (the store protocol).
 */
export default defineModule({
  name: 'store',
  dependsOn: ['roles', 'audit'],
  entities: { system: [StoreChoiceSchema] },
  setup: (runtime) => new StoreAdmin(runtime),
  graphql: registerStore,
  scopes: () => [
    {
      name: STORE_SERVE_SCOPE,
      grants: "serve this gateway's store to other gateways (all of its data)",
      everyone: false,
    },
  ],
});
