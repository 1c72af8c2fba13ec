import { defineModule } from '../../src/index.ts';
import { syncIndexes } from './backfill.ts';
import { checkSchemas, collectionsConfig, definitions } from './config.ts';
import { BuiltIndexSchema, DocumentSchema, IndexEntrySchema } from './entities.ts';
import { registerCollections } from './graphql.ts';

/** JSON documents in the business database, queried only through declared indexes. */
export default defineModule({
  name: 'collections',
  dependsOn: ['users', 'roles'],
  config: collectionsConfig,
  checkConfig: checkSchemas,
  entities: { store: [DocumentSchema, IndexEntrySchema, BuiltIndexSchema] },
  graphql: registerCollections,
  start: (runtime) => syncIndexes(runtime, definitions(runtime.settings)),
  api: { definitions },
});
