import { defineModule } from '../../src/index.ts';
import { collectionScopes } from './access.ts';
import { syncIndexes } from './backfill.ts';
import { checkSchemas, collectionsConfig, definitions } from './config.ts';
import { BuiltIndexSchema, DocumentSchema, IndexEntrySchema } from './entities.ts';
import { registerCollections } from './graphql.ts';
import * as store from './store.ts';

/** JSON documents in the business database, queried only through declared indexes. */
export default defineModule({
  name: 'collections',
  dependsOn: ['users', 'roles', 'leases'],
  config: collectionsConfig,
  checkConfig: checkSchemas,
  entities: { store: [DocumentSchema, IndexEntrySchema, BuiltIndexSchema] },
  graphql: registerCollections,
  scopes: (settings) => [...definitions(settings).values()].flatMap(collectionScopes),
  setup: (runtime) => ({
    prepareStore: (em) => syncIndexes(runtime, em, definitions(runtime.settings)),
  }),
  /** Server-side document access (see store.ts): the same rules and events as GraphQL, no viewer rules. */
  api: {
    definitions,
    get: store.get,
    put: store.put,
    patch: store.patch,
    remove: store.remove,
    query: store.query,
    count: store.count,
  },
});
