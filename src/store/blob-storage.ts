/**
 * Where blob bytes live, as the blobs module and the store see them. The interface is the kernel's
 * because a store can hold the bytes itself: a remote Portico streams them to and from its own
 * storage (`StoreBackend.bytes`); otherwise the blobs module's configured driver holds them.
 */

/** An upload written to a temporary object, hashed and counted, not yet at its content address. */
export interface StagedBlob {
  /** Lower-case hex SHA-256 of the bytes. */
  readonly sha256: string;
  readonly size: number;
  /** The driver's name for the temporary object. */
  readonly key: string;
}

export interface StageOptions {
  /**
   * The source's chunks are this upload's alone, each in an ArrayBuffer of its own (an HTTP request
   * body as Node reads it): the driver may free a chunk's memory (detach its buffer) once it has
   * written it. Left to the garbage collector, some 64 MiB of them pile up before one runs.
   */
  disposableChunks?: boolean;
}

/** An object at a content address, as a driver lists it for the sweep of unreferenced bytes. */
export interface StoredContent {
  readonly sha256: string;
  readonly size: number;
}

/** Inclusive byte offsets, as in `Content-Range`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where blob bytes live: content-addressed objects (one per distinct SHA-256) and temporary
 * objects for uploads in progress. The metadata and the lock that decides when bytes may go are
 * the store's (service.ts calls it); a driver only moves bytes. The filesystem driver below is the default.
 */
export interface BlobStorage {
  /**
   * Streams `source` into a temporary object, hashing and counting as it goes, and makes it
   * durable before resolving. Past `maxBytes` it stops reading (without cancelling `source`, so an
   * HTTP route can still answer 413 on the connection), drops what it wrote and throws
   * {@link BlobTooLarge}; when `source` fails it drops it too and throws {@link UploadInterrupted}.
   */
  stage(source: ReadableStream<Uint8Array>, maxBytes: number, options?: StageOptions): Promise<StagedBlob>;
  /** Moves a staged object to its content address, durably. */
  commit(staged: StagedBlob): Promise<void>;
  /** Drops a staged object (no error when it is gone already). */
  discard(staged: StagedBlob): Promise<void>;
  /** Whether bytes are stored at this content address. */
  exists(sha256: string): Promise<boolean>;
  /**
   * The bytes at a content address (all of them, or `range`), or null when there are none. The
   * stream stops (and lets go of the object) when `signal` aborts: the client went away.
   */
  read(sha256: string, range?: ByteRange, signal?: AbortSignal): Promise<ReadableStream<Uint8Array> | null>;
  /** Removes the bytes at a content address (no error when there are none). */
  delete(sha256: string): Promise<void>;
  /**
   * Removes temporary objects of uploads that can no longer finish (written before `olderThan`, or,
   * where a driver can tell, by a process that is gone); returns how many.
   */
  sweep(olderThan: Date): Promise<number>;
  /**
   * The objects at content addresses last written before `olderThan`, a page at a time (memory
   * stays bounded however many there are): candidates for the sweep of bytes no blob references.
   */
  contents(olderThan: Date): AsyncIterable<StoredContent>;
}

export class BlobTooLarge extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`A blob is at most ${limit} bytes.`);
    this.name = 'BlobTooLarge';
    this.limit = limit;
  }
}

/** The upload's source failed (the client went away): nothing was stored. */
export class UploadInterrupted extends Error {
  constructor(cause: unknown) {
    super('The upload was cut off before it ended.', { cause });
    this.name = 'UploadInterrupted';
  }
}

/** An S3-compatible bucket, as `BLOB_STORAGE_URL=s3://<bucket>[/<prefix>]?…` names it. */
export interface S3Location {
  bucket: string;
  /** Empty, or ends with `/`. */
  prefix: string;
  /** A compatible store's address (MinIO, R2, …); absent: AWS S3 itself. */
  endpoint?: string;
  region: string;
  /** `/<bucket>/<key>` rather than `<bucket>.<host>/<key>`: what most compatible stores need. */
  forcePathStyle: boolean;
}

/** Where blob bytes live (HTTP.md, "Blob storage (v2)"). */
export type BlobStorageTarget =
  | { kind: 'file'; folder: string }
  | { kind: 's3'; location: S3Location }
  | { kind: 'database' };

/**
 * What `BLOB_STORAGE_URL` names: `file:<folder>`, `s3://<bucket>[/<prefix>]?endpoint=<url>&region=<r>&forcePathStyle=true`,
 * or `database` (the store's own SQL database).
 * Throws, saying why, for anything else.
 */
export function parseBlobStorageUrl(url: string, defaultRegion: string | undefined): BlobStorageTarget {
  if (/^file:/i.test(url)) {
    const folder = url.replace(/^file:(\/\/)?/i, '');
    if (!folder) throw new Error(`"${url}" names no folder`);
    return { kind: 'file', folder };
  }
  if (url === 'database') return { kind: 'database' };
  if (!/^s3:\/\//i.test(url))
    throw new Error('expected file:<folder>, s3://<bucket>[/<prefix>]?endpoint=…&region=…, or database');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL`);
  }
  const bucket = parsed.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new Error(`"${bucket}" is not a bucket name`);
  const prefix = decodeURIComponent(parsed.pathname.replace(/^\/+/, '').replace(/\/*$/, ''));
  const endpoint = parsed.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined && !/^https?:\/\//i.test(endpoint))
    throw new Error('endpoint is an http(s) URL');
  const region = parsed.searchParams.get('region') ?? defaultRegion ?? 'us-east-1';
  const forcePathStyle = parsed.searchParams.get('forcePathStyle');
  if (forcePathStyle !== null && forcePathStyle !== 'true' && forcePathStyle !== 'false') {
    throw new Error('forcePathStyle is true or false');
  }
  return {
    kind: 's3',
    location: {
      bucket,
      prefix: prefix ? `${prefix}/` : '',
      endpoint,
      region,
      forcePathStyle: forcePathStyle === 'true',
    },
  };
}

/**
 * `source` as a stream that counts what passes (and shows it to `onChunk`), ending in an error past
 * `maxBytes` without cancelling `source`, so that an HTTP route can still answer 413 on the
 * client's connection. For drivers that hand an upload to a client library (S3, a data server).
 */
export function limitedUpload(
  source: ReadableStream<Uint8Array>,
  maxBytes: number,
  onChunk: (chunk: Uint8Array) => void = () => {},
) {
  const reader = source.getReader();
  let size = 0;
  let tooLarge = false;
  let failure: unknown;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        failure = error ?? new Error('the upload failed');
        controller.error(failure);
        return;
      }
      if (next.done) {
        controller.close();
        return;
      }
      size += next.value.byteLength;
      if (size > maxBytes) {
        tooLarge = true;
        reader.releaseLock();
        controller.error(new BlobTooLarge(maxBytes));
        return;
      }
      onChunk(next.value);
      controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return {
    stream,
    size: () => size,
    /** Whether it stopped past `maxBytes`. */
    tooLarge: () => tooLarge,
    /** Why `source` failed, if it did (the client went away). */
    failure: () => failure,
  };
}
