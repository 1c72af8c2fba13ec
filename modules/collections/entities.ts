import { defineEntity, p } from '@mikro-orm/core';

/** A JSON document of a collection. `data` is kept as the JSON text it was written as. */
const DocumentSchema = defineEntity({
  name: 'Document',
  tableName: 'documents',
  properties: {
    collection: p.string().length(64).primary(),
    id: p.string().length(128).primary(),
    data: p.text(),
    version: p.integer(),
    ownerId: p.string().nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
  },
});
export class Document extends DocumentSchema.class {}
DocumentSchema.setClass(Document);

/**
 * One entry per document and declared index: the encoded key (memcmp-ordered bytes).
 * Queries are range scans of (collection, index, key, document) or, for owner-only
 * readers, (collection, index, owner, key, document). `uniqueKey` repeats `key` for
 * unique indexes only, so one database constraint refuses duplicates.
 */
const IndexEntrySchema = defineEntity({
  name: 'IndexEntry',
  tableName: 'index_entries',
  indexes: [{ properties: ['collection', 'indexName', 'ownerId', 'key', 'documentId'] }],
  uniques: [{ properties: ['collection', 'indexName', 'uniqueKey'] }],
  properties: {
    collection: p.string().length(64).primary(),
    indexName: p.string().length(64).primary(),
    key: p.blob().primary(),
    documentId: p.string().length(128).primary(),
    ownerId: p.string().nullable(),
    uniqueKey: p.blob().nullable(),
  },
});
export class IndexEntry extends IndexEntrySchema.class {}
IndexEntrySchema.setClass(IndexEntry);

/** The definition each index was last built with: a change triggers a rebuild at start. */
const BuiltIndexSchema = defineEntity({
  name: 'BuiltIndex',
  tableName: 'built_indexes',
  properties: {
    collection: p.string().length(64).primary(),
    indexName: p.string().length(64).primary(),
    definition: p.text(),
    builtAt: p.datetime(),
  },
});
export class BuiltIndex extends BuiltIndexSchema.class {}
BuiltIndexSchema.setClass(BuiltIndex);

export { BuiltIndexSchema, DocumentSchema, IndexEntrySchema };
