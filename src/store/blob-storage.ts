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
  stage(source: ReadableStream<Uint8Array>, maxBytes: number): Promise<StagedBlob>;
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
  /** Removes temporary objects of uploads that can no longer finish; returns how many. Run at start. */
  sweep(): Promise<number>;
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
