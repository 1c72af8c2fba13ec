import { raw } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import { dialectOf, selectRows } from '../../db.ts';
import { ormSql } from '../../sql.ts';
import type { BlobContent, BlobCreation, BlobDeletion, BlobRecord } from '../backend.ts';
import { checkFence } from './leases.ts';
import { BlobMetadata } from './schema.ts';

type Db = SqlEntityManager;

const record = (row: BlobMetadata): BlobRecord => ({
  id: row.id,
  sha256: row.sha256,
  size: Number(row.size),
  contentType: row.contentType,
  filename: row.filename ?? null,
  ownerId: row.ownerId ?? null,
  createdAt: row.createdAt,
});

/**
 * Takes the row lock of a content address for the rest of the transaction, creating its row if
 * needed. Every statement that adds or removes a reference to some bytes runs after this in the
 * same transaction, so uploads and deletes of the same content take turns: on PostgreSQL through
 * the row lock (a concurrent insert of the same key waits too), on SQLite through the database
 * write lock, which this first write takes.
 */
async function lockContent(em: Db, { sha256, size }: BlobContent) {
  await selectRows(
    em,
    'insert into blob_contents (sha256, size, created_at) values (?, ?, ?) on conflict (sha256) do update set size = excluded.size',
    [sha256, size, em.getPlatform().processDateProperty(new Date())],
  );
}

/** With the content lock held: when no blob references the bytes any more, they go. */
async function collectLocked(em: Db, sha256: string, drop: (sha256: string) => Promise<void>) {
  const referenced = await selectRows(em, 'select 1 from blobs where sha256 = ? limit 1', [sha256]);
  if (referenced.length > 0) return;
  await selectRows(em, 'delete from blob_contents where sha256 = ?', [sha256]);
  // Last, still under the lock: no upload can place these bytes again meanwhile. Only a failed
  // commit after this could leave a row without bytes, which downloads answer with 404.
  await drop(sha256);
}

/** Writes a blob's row, its bytes placed first, in one transaction under the content lock. */
export async function createBlob(em: Db, blob: BlobRecord, { fence, place }: BlobCreation) {
  await em.transactional(async (tx) => {
    if (fence) await checkFence(ormSql(tx, dialectOf(tx)), fence);
    await lockContent(tx, blob);
    await place();
    await tx.insert(BlobMetadata, { ...blob });
  });
}

/** Under the content lock: the bytes go when no blob references them. */
export async function collectContent(em: Db, content: BlobContent, drop: (sha256: string) => Promise<void>) {
  await em.transactional(async (tx) => {
    await lockContent(tx, content);
    await collectLocked(tx, content.sha256, drop);
  });
}

/** Those of `sha256s` no blob references: one indexed read for the whole batch. */
export async function unreferencedContents(em: Db, sha256s: readonly string[]): Promise<string[]> {
  if (sha256s.length === 0) return [];
  const referenced = await selectRows<{ sha256: string }>(
    em,
    `select distinct sha256 from blobs where sha256 in (${sha256s.map(() => '?').join(', ')})`,
    sha256s,
  );
  const found = new Set(referenced.map((row) => row.sha256));
  return sha256s.filter((sha256) => !found.has(sha256));
}

/**
 * Deletes a blob's row and, when it was the last reference, its bytes: one transaction under the
 * content lock, so a concurrent upload of the same bytes either finds them still referenced or
 * places them anew. False when there was no such blob (or a concurrent delete won).
 */
export async function deleteBlob(em: Db, id: string, { guard, fence, drop }: BlobDeletion) {
  return em.transactional(async (tx) => {
    const row = await tx.findOne(BlobMetadata, { id });
    if (!row) return false;
    const blob = record(row);
    guard(blob);
    if (fence) await checkFence(ormSql(tx, dialectOf(tx)), fence);
    await lockContent(tx, blob);
    if ((await tx.nativeDelete(BlobMetadata, { id })) === 0) return false;
    await collectLocked(tx, blob.sha256, drop);
    return true;
  });
}

export async function findBlob(em: Db, id: string): Promise<BlobRecord | null> {
  const row = await em.findOne(BlobMetadata, { id });
  return row ? record(row) : null;
}

export async function findBlobs(em: Db, ids: readonly string[]): Promise<BlobRecord[]> {
  const rows = ids.length > 0 ? await em.find(BlobMetadata, { id: { $in: [...ids] } }) : [];
  return rows.map(record);
}

/**
 * Up to `limit` blobs, newest first; one owner's, or everyone's when `ownerId` is undefined; with
 * `contentTypePrefix`, those whose content type starts with it, ignoring ASCII case (media types are
 * case-insensitive and ASCII, which lower() folds alike on both databases).
 */
export async function listBlobs(
  em: Db,
  options: {
    ownerId: string | undefined;
    contentTypePrefix?: string | null;
    limit: number;
    after: string | undefined;
  },
): Promise<BlobRecord[]> {
  const prefix = options.contentTypePrefix;
  const rows = await em.find(
    BlobMetadata,
    {
      ...(options.ownerId === undefined ? {} : { ownerId: options.ownerId }),
      ...(options.after === undefined ? {} : { id: { $lt: options.after } }),
      // substr, not LIKE: a prefix's `_` and `%` are plain characters here.
      ...(prefix
        ? {
            [raw((alias) => `lower(substr(${alias}.content_type, 1, ${[...prefix].length}))`)]:
              prefix.toLowerCase(),
          }
        : {}),
    },
    { orderBy: { id: 'desc' }, limit: options.limit },
  );
  return rows.map(record);
}
