import type { SqlEntityManager } from '@mikro-orm/sql';
import { fromGlobalId, type Runtime, toGlobalId } from '../../src/index.ts';
import leases, { type Fence } from '../leases/index.ts';
import { BLOB_ID, type BlobRecord, createBlob, type DeleteGuard, deleteBlob } from './service.ts';
import { type BlobStorage, defaultStorage } from './storage.ts';

/**
 * The running module's storage driver and the upload and delete flows that GraphQL and the HTTP
 * routes share: bytes to the driver, then the metadata row (service.ts).
 */
const storages = new WeakMap<Runtime, BlobStorage>();

/** Makes the configured driver (the filesystem by default) and sweeps leftover uploads. */
export async function startStorage(runtime: Runtime) {
  const factory = runtime.settings.blobs.storage ?? defaultStorage;
  const storage = await factory({ dataDir: runtime.env.dataDir, log: runtime.log });
  const swept = await storage.sweep();
  if (swept > 0) runtime.log.info({ swept }, 'removed temporary files of uploads that never finished');
  storages.set(runtime, storage);
}

export function storageOf(runtime: Runtime): BlobStorage {
  const storage = storages.get(runtime);
  if (!storage) throw new Error('The blobs module has not started');
  return storage;
}

export interface UploadInput {
  /** As sent; anything that is not a plain media type is stored as application/octet-stream. */
  contentType: string | null;
  /** As sent; cleaned before it is stored. */
  filename: string | null;
  ownerId: string | null;
  fence?: Fence | null;
}

/** Streams an upload to storage (at most `blobs.maxBytes`, else BlobTooLarge) and records it. */
export async function upload(
  runtime: Runtime,
  em: SqlEntityManager,
  source: ReadableStream<Uint8Array>,
  input: UploadInput,
) {
  const storage = storageOf(runtime);
  // Refuses a stale token before its bytes travel; the check that counts is the one in the write.
  if (input.fence) await leases.api.checkFence(em, input.fence);
  const staged = await storage.stage(source, runtime.settings.blobs.maxBytes);
  return createBlob(em, storage, staged, {
    contentType: mediaType(input.contentType),
    filename: cleanFilename(input.filename),
    ownerId: input.ownerId,
    fence: input.fence,
  });
}

/** The download route of a blob: `/blobs/<the Blob's GraphQL id>` (contract v2), so a client can build it. */
export const blobPath = (blob: Pick<BlobRecord, 'id'>) => `/blobs/${toGlobalId('Blob', blob.id)}`;

/**
 * The row id a download path names: the Blob's GraphQL id in its one canonical form (also
 * percent-encoded, as clients may encode a path segment), or the bare row id that `url` and signed
 * URLs carried before contract v2, which apps may have stored. Null for anything else, so that
 * nothing but a well-formed id reaches a query.
 */
export function rowIdOfPath(segment: string): string | null {
  if (BLOB_ID.test(segment)) return segment;
  try {
    const id = decodeURIComponent(segment);
    const rowId = fromGlobalId(id, 'Blob');
    return BLOB_ID.test(rowId) && toGlobalId('Blob', rowId) === id ? rowId : null;
  } catch {
    return null;
  }
}

export const remove = (
  runtime: Runtime,
  em: SqlEntityManager,
  id: string,
  guard: DeleteGuard,
  fence?: Fence | null,
) => deleteBlob(em, storageOf(runtime), id, guard, fence);

const TOKEN = "[a-z0-9!#$&^_.+'*`|~-]+";
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=(${TOKEN}|"[^"\\\\\\p{Cc}]*"))*$`, 'iu');
export const OCTET_STREAM = 'application/octet-stream';

/** A syntactically valid media type (RFC 9110) of at most 255 characters, else application/octet-stream. */
export function mediaType(value: string | null): string {
  const trimmed = value?.trim() ?? '';
  return trimmed.length <= 255 && MEDIA_TYPE.test(trimmed) ? trimmed : OCTET_STREAM;
}

// Control characters, and the bidirectional overrides that disguise extensions ("gpj.exe").
const UNSAFE_CHARACTERS = /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * A filename fit to store and to send back in `Content-Disposition`: its last path segment, no
 * control or bidi-override characters, at most 255 characters; null when nothing is left.
 */
export function cleanFilename(value: string | null): string | null {
  const last = (value ?? '').split(/[/\\]/).pop() ?? '';
  const cleaned = [...last.replace(UNSAFE_CHARACTERS, '').trim()].slice(0, 255).join('').trim();
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? null : cleaned;
}
