import { defineEntity, p } from '@mikro-orm/core';

// The store's tables. Schema updates are additive (src/db.ts, `migrate`): a change here must add
// nullable or defaulted columns, never rename or drop.

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
 * One entry per document and declared index: the encoded key (memcmp-ordered bytes, keys.ts).
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

/** One uploaded blob: who uploaded what, under which name; the bytes are found by `sha256`. */
const BlobMetadataSchema = defineEntity({
  name: 'BlobMetadata',
  tableName: 'blobs',
  // A user's blobs, newest first.
  indexes: [{ properties: ['ownerId', 'id'] }],
  properties: {
    id: p.string().length(32).primary(),
    sha256: p.string().length(64).index(),
    size: p.bigint('number'),
    contentType: p.string().length(255),
    filename: p.string().length(255).nullable(),
    ownerId: p.string().nullable(),
    createdAt: p.datetime(),
  },
});
export class BlobMetadata extends BlobMetadataSchema.class {}
BlobMetadataSchema.setClass(BlobMetadata);

/**
 * One row per stored content address while some blob references it. Its row lock serialises every
 * change to who references those bytes: an upload placing them, a delete removing them.
 */
const BlobContentSchema = defineEntity({
  name: 'BlobContent',
  tableName: 'blob_contents',
  properties: {
    sha256: p.string().length(64).primary(),
    size: p.bigint('number'),
    createdAt: p.datetime(),
  },
});
export class BlobContent extends BlobContentSchema.class {}
BlobContentSchema.setClass(BlobContent);

/**
 * The bytes of blobs when `BLOB_STORAGE_URL=database` (blob-chunks.ts): an object is the chunks of
 * one address (a SHA-256, or `tmp/<random>` while its upload runs), each starting at `position`.
 * Empty in every other configuration. `bytes` comes last, so that a scan of the other columns
 * (the sweep) reads no chunk on SQLite, which keeps a row's columns in order.
 */
const BlobChunkSchema = defineEntity({
  name: 'BlobChunk',
  tableName: 'blob_chunks',
  properties: {
    address: p.string().length(64).primary(),
    position: p.bigint('number').primary(),
    /** Epoch milliseconds when its upload began, for the sweep of uploads that never finished. */
    stagedAt: p.bigint('number'),
    bytes: p.blob(),
  },
});
export class BlobChunk extends BlobChunkSchema.class {}
BlobChunkSchema.setClass(BlobChunk);

/**
 * One row per key, kept after release so that `token` only ever grows. Times are
 * epoch milliseconds of the database's clock, never the gateway's: instances with
 * skewed clocks still agree on who holds a lease.
 */
const LeaseSchema = defineEntity({
  name: 'Lease',
  tableName: 'leases',
  properties: {
    key: p.string().length(256).primary(),
    /** `s:<session id>`, `k:<api key id>`, or `x:<random>` for server-side code. */
    holder: p.string().length(64),
    /** The fencing token of the latest grant. */
    token: p.bigint('number'),
    acquiredAt: p.bigint('number'),
    /** A released lease ends at its release time; the key is free once this has passed. */
    expiresAt: p.bigint('number').index(),
  },
});
export class Lease extends LeaseSchema.class {}
LeaseSchema.setClass(Lease);

/** Every entity of the store database. */
export const STORE_ENTITIES = [
  DocumentSchema,
  IndexEntrySchema,
  BuiltIndexSchema,
  BlobMetadataSchema,
  BlobContentSchema,
  BlobChunkSchema,
  LeaseSchema,
];
