import {
  type BlobDeletion,
  type BlobRecord,
  type BlobStorage,
  type Fence,
  fromGlobalId,
  newId,
  type Runtime,
  type StagedBlob,
  type StageOptions,
  toGlobalId,
} from '../../src/index.ts';

/** Ids are `newId()`: 32 lower-case hex digits. Anything else never reaches a query or a path. */
export const BLOB_ID = /^[0-9a-f]{32}$/;

/**
 * The flows that GraphQL and the HTTP routes share: bytes to the gateway's storage driver, metadata
 * to the store (`runtime.store.blobs`), whose lock of a content address decides when bytes may be
 * placed or dropped.
 */

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
  storage: BlobStorage,
  source: ReadableStream<Uint8Array>,
  input: UploadInput,
  stageOptions?: StageOptions,
) {
  // Refuses a stale token before its bytes travel; the check that counts is the one in the write.
  if (input.fence) await runtime.store.leases.checkFence(input.fence);
  const staged = await storage.stage(source, runtime.settings.blobs.maxBytes, stageOptions);
  const blob: BlobRecord = {
    id: newId(),
    sha256: staged.sha256,
    size: staged.size,
    contentType: mediaType(input.contentType),
    filename: cleanFilename(input.filename),
    ownerId: input.ownerId,
    createdAt: new Date(),
  };
  await createStaged(runtime, storage, staged, blob, input.fence);
  return blob;
}

/**
 * Makes a staged upload a blob: places its bytes at their content address (or drops them when the
 * same bytes are stored already) and records it, in one step of the store under the content lock.
 * On failure nothing is visible: the staged object is dropped, and bytes placed for nothing go.
 */
export async function createStaged(
  runtime: Runtime,
  storage: BlobStorage,
  staged: StagedBlob,
  blob: BlobRecord,
  /** Refused (FENCE_REJECTED) unless its token is the lease's latest. */
  fence?: Fence | null,
): Promise<void> {
  let placed = false;
  try {
    await runtime.store.blobs.create(blob, {
      fence,
      staged,
      place: async () => {
        if (await storage.exists(staged.sha256)) {
          await storage.discard(staged);
        } else {
          await storage.commit(staged);
          placed = true;
        }
      },
    });
  } catch (error) {
    // Best effort: bytes left behind by a failure here are unreferenced space, never a broken blob.
    await storage.discard(staged).catch(() => {});
    if (placed) await runtime.store.blobs.collect(staged, (sha256) => storage.delete(sha256)).catch(() => {});
    throw error;
  }
}

export async function findBlob(runtime: Runtime, id: string): Promise<BlobRecord | null> {
  if (!BLOB_ID.test(id)) return null;
  return runtime.store.blobs.find(id);
}

/** Blobs by id, in the order asked (null where there is none), for `node(id:)`. */
export async function loadBlobs(runtime: Runtime, ids: readonly string[]): Promise<(BlobRecord | null)[]> {
  const valid = ids.filter((id) => BLOB_ID.test(id));
  const found = valid.length > 0 ? await runtime.store.blobs.findMany(valid) : [];
  const byId = new Map(found.map((blob) => [blob.id, blob]));
  return ids.map((id) => byId.get(id) ?? null);
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

/**
 * Deletes a blob and, when it was the last reference, its bytes. False when there was no such blob
 * (or a concurrent delete won).
 */
export const remove = (
  runtime: Runtime,
  storage: BlobStorage,
  id: string,
  guard: BlobDeletion['guard'],
  fence?: Fence | null,
) => runtime.store.blobs.delete(id, { guard, fence, drop: (sha256) => storage.delete(sha256) });

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
