import type { SqlEntityManager } from '@mikro-orm/sql';
import { newId, selectRows } from '../../src/index.ts';
import leases, { type Fence } from '../leases/index.ts';
import { BlobMetadata } from './entities.ts';
import type { BlobStorage, StagedBlob } from './storage.ts';

/** A blob's metadata row as the API reads it. */
export interface BlobRecord {
  readonly id: string;
  readonly sha256: string;
  readonly size: number;
  readonly contentType: string;
  readonly filename: string | null;
  readonly ownerId: string | null;
  readonly createdAt: Date;
}

/** Ids are `newId()`: 32 lower-case hex digits. Anything else never reaches a query or a path. */
export const BLOB_ID = /^[0-9a-f]{32}$/;

const record = (row: BlobMetadata): BlobRecord => ({
  id: row.id,
  sha256: row.sha256,
  size: Number(row.size),
  contentType: row.contentType,
  filename: row.filename ?? null,
  ownerId: row.ownerId ?? null,
  createdAt: row.createdAt,
});

type Db = SqlEntityManager;

/**
 * Takes the row lock of a content address for the rest of the transaction, creating its row if
 * needed. Every statement that adds or removes a reference to some bytes runs after this in the
 * same transaction, so uploads and deletes of the same content take turns: on PostgreSQL through
 * the row lock (a concurrent insert of the same key waits too), on SQLite through the database
 * write lock, which this first write takes.
 */
async function lockContent(em: Db, sha256: string, size: number) {
  await selectRows(
    em,
    'insert into blob_contents (sha256, size, created_at) values (?, ?, ?) on conflict (sha256) do update set size = excluded.size',
    [sha256, size, em.getPlatform().processDateProperty(new Date())],
  );
}

/** With the content lock held: when no blob references the bytes any more, they go. */
async function collectLocked(em: Db, storage: BlobStorage, sha256: string) {
  const referenced = await selectRows(em, 'select 1 from blobs where sha256 = ? limit 1', [sha256]);
  if (referenced.length > 0) return;
  await selectRows(em, 'delete from blob_contents where sha256 = ?', [sha256]);
  // Last, still under the lock: no upload can place these bytes again meanwhile. Only a failed
  // commit after this could leave a row without bytes, which downloads answer with 404.
  await storage.delete(sha256);
}

export interface NewBlob {
  contentType: string;
  filename: string | null;
  ownerId: string | null;
  /** Refused (FENCE_REJECTED) unless its token is the lease's latest. */
  fence?: Fence | null;
}

/**
 * Makes a staged upload a blob: places its bytes at their content address (or drops them when the
 * same bytes are stored already) and writes the row, in one transaction under the content lock.
 * On failure nothing is visible: the staged object is dropped, and bytes placed for nothing go.
 */
export async function createBlob(
  em: Db,
  storage: BlobStorage,
  staged: StagedBlob,
  input: NewBlob,
): Promise<BlobRecord> {
  const blob: BlobRecord = {
    id: newId(),
    sha256: staged.sha256,
    size: staged.size,
    contentType: input.contentType,
    filename: input.filename,
    ownerId: input.ownerId,
    createdAt: new Date(),
  };
  let placed = false;
  try {
    await em.transactional(async (tx) => {
      if (input.fence) await leases.api.checkFence(tx, input.fence);
      await lockContent(tx, staged.sha256, staged.size);
      if (await storage.exists(staged.sha256)) {
        await storage.discard(staged);
      } else {
        await storage.commit(staged);
        placed = true;
      }
      await tx.insert(BlobMetadata, { ...blob });
    });
    return blob;
  } catch (error) {
    // Best effort: bytes left behind by a failure here are unreferenced space, never a broken blob.
    await storage.discard(staged).catch(() => {});
    if (placed) {
      await em
        .transactional(async (tx) => {
          await lockContent(tx, staged.sha256, staged.size);
          await collectLocked(tx, storage, staged.sha256);
        })
        .catch(() => {});
    }
    throw error;
  }
}

/** Refuses the operation (throws) for a blob the caller may not change. */
export type DeleteGuard = (blob: BlobRecord) => void;

/**
 * Deletes a blob's row and, when it was the last reference, its bytes: one transaction under the
 * content lock, so a concurrent upload of the same bytes either finds them still referenced or
 * places them anew. False when there was no such blob (or a concurrent delete won).
 */
export async function deleteBlob(
  em: Db,
  storage: BlobStorage,
  id: string,
  guard: DeleteGuard,
  fence?: Fence | null,
) {
  return em.transactional(async (tx) => {
    const row = await tx.findOne(BlobMetadata, { id });
    if (!row) return false;
    const blob = record(row);
    guard(blob);
    if (fence) await leases.api.checkFence(tx, fence);
    await lockContent(tx, blob.sha256, blob.size);
    if ((await tx.nativeDelete(BlobMetadata, { id })) === 0) return false;
    await collectLocked(tx, storage, blob.sha256);
    return true;
  });
}

export async function findBlob(em: Db, id: string): Promise<BlobRecord | null> {
  if (!BLOB_ID.test(id)) return null;
  const row = await em.findOne(BlobMetadata, { id });
  return row ? record(row) : null;
}

/** Blobs by id, in the order asked (null where there is none), for `node(id:)`. */
export async function loadBlobs(em: Db, ids: readonly string[]): Promise<(BlobRecord | null)[]> {
  const valid = ids.filter((id) => BLOB_ID.test(id));
  const rows = valid.length > 0 ? await em.find(BlobMetadata, { id: { $in: valid } }) : [];
  const byId = new Map(rows.map((row) => [row.id, record(row)]));
  return ids.map((id) => byId.get(id) ?? null);
}

/** Up to `limit` blobs, newest first; one owner's, or everyone's when `ownerId` is undefined. */
export async function listBlobs(
  em: Db,
  options: { ownerId: string | undefined; limit: number; after: string | undefined },
): Promise<BlobRecord[]> {
  const rows = await em.find(
    BlobMetadata,
    {
      ...(options.ownerId === undefined ? {} : { ownerId: options.ownerId }),
      ...(options.after === undefined ? {} : { id: { $lt: options.after } }),
    },
    { orderBy: { id: 'desc' }, limit: options.limit },
  );
  return rows.map(record);
}
