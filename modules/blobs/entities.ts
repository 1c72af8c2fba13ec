import { defineEntity, p } from '@mikro-orm/core';

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

export { BlobContentSchema, BlobMetadataSchema };
