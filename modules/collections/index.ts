import { declaredCollections, defineModule } from '../../src/index.ts';
import { collectionScopes } from './access.ts';
import { checkSchemas, collectionsConfig, definitions } from './config.ts';
import { registerCollections } from './graphql.ts';
import * as service from './service.ts';
import { accept } from './validation.ts';

/** JSON documents in the store, queried only through declared indexes. */
export default defineModule({
  name: 'collections',
  dependsOn: ['users', 'roles', 'leases'],
  config: collectionsConfig,
  checkConfig: checkSchemas,
  graphql: registerCollections,
  scopes: (settings) => [...definitions(settings).values()].flatMap(collectionScopes),
  setup: (runtime) => ({
    // A data server compares the collections of the gateways it serves with these, and checks their writes.
    contributes: [...definitions(runtime.settings).values()].map((collection) =>
      declaredCollections.with({ ...collection, accept: (id, data) => accept(collection, id, data) }),
    ),
    prepareStore: (store) => store.documents.prepare(definitions(runtime.settings).values()),
  }),
  /** Server-side document access (see service.ts): the same rules and events as GraphQL, no viewer rules. */
  api: {
    definitions,
    get: service.get,
    put: service.put,
    patch: service.patch,
    remove: service.remove,
    query: service.query,
    count: service.count,
  },
});
