import { defineModule } from '../../src/index.ts';
import { registerStore } from './graphql.ts';

/**
 * The store as admins see it: `storeBackend` says which backend holds the business data
 * (collections, blob metadata, leases), where, since when, and whether it answers now.
 */
export default defineModule({
  name: 'store',
  dependsOn: ['roles'],
  graphql: registerStore,
});
