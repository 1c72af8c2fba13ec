import {
  type BlobStorage,
  every,
  type ModuleInstance,
  type Runtime,
  type StagedBlob,
  type StoredContent,
  traceBlobStorage,
} from '../../src/index.ts';
import { storageAt } from './storage.ts';

/** A staged upload no gateway has used after this long is dropped. */
const SERVED_UPLOAD_TTL_MS = 60 * 60 * 1000;
/** How often each instance sweeps bytes that no blob references, besides once at start. */
const CONTENT_SWEEP_MS = 60 * 60 * 1000;
/** Content addresses the store is asked about in one read. */
const SWEEP_BATCH = 1000;

/**
 * Uploads staged here for other gateways (the store protocol), by key, until they make them blobs
 * or drop them. What each holds is what this side measured, so no caller can claim other bytes.
 */
export class ServedUploads {
  readonly #uploads = new Map<string, { staged: StagedBlob; at: number }>();
  readonly #storage: () => BlobStorage;

  constructor(storage: () => BlobStorage) {
    this.#storage = storage;
  }

  add(staged: StagedBlob) {
    const now = Date.now();
    // Oldest first: stop at the first that is still young.
    for (const [key, upload] of this.#uploads) {
      if (now - upload.at < SERVED_UPLOAD_TTL_MS) break;
      this.#uploads.delete(key);
      void this.#storage()
        .discard(upload.staged)
        .catch(() => {});
    }
    this.#uploads.set(staged.key, { staged, at: now });
  }

  /** The staged upload under `key`, which is then no longer held here; undefined when there is none. */
  take(key: string): StagedBlob | undefined {
    const upload = this.#uploads.get(key);
    this.#uploads.delete(key);
    return upload?.staged;
  }
}

/**
 * A stream that passes `source` on and counts each chunk's bytes as its reader takes it: what was
 * actually received, also when the client stops halfway.
 */
function counted(source: ReadableStream<Uint8Array>, bytes: { inc(amount: number): void }) {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        bytes.inc(value.byteLength);
        controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    // Nothing read ahead: a chunk is counted when the consumer asks for it.
    { highWaterMark: 0 },
  );
}

/** The blobs module in one gateway: the storage driver that holds its bytes, made at start. */
export class BlobFiles implements ModuleInstance {
  readonly #runtime: Runtime;
  #storage: BlobStorage | undefined;
  #contentSweep: ReturnType<typeof every> | undefined;
  #stopping = false;
  readonly servedUploads = new ServedUploads(() => this.storage);
  readonly #bytesIn: { inc(amount: number): void };
  readonly #bytesOut: { inc(amount: number): void };

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
    const bytes = runtime.metrics.counter({
      name: 'portico_blob_bytes_total',
      help: 'Blob bytes uploaded by clients (in) and downloaded by them (out), as streamed',
      labelNames: ['direction'] as const,
    });
    this.#bytesIn = bytes.labels('in');
    this.#bytesOut = bytes.labels('out');
  }

  /** An upload's body, its bytes counted as they arrive. */
  incoming(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    return counted(body, this.#bytesIn);
  }

  /** Counts a download's bytes as the client's connection takes them. */
  readonly sent = (bytes: number) => this.#bytesOut.inc(bytes);

  /**
   * Makes the driver (a `blobs.storage` factory in code, else BLOB_STORAGE_URL's: a folder, an
   * S3 bucket or the store database), sweeps leftover uploads, and starts the sweep of unreferenced bytes.
   */
  async start() {
    const { log } = this.#runtime;
    const storage = await this.open();
    // Storage that does not answer at start (a bucket away) must not keep the gateway from starting:
    // blob operations answer SERVICE_UNAVAILABLE meanwhile, and the next start sweeps.
    try {
      const swept = await storage.sweep(this.#sweepBefore());
      if (swept > 0) log.info({ swept }, 'removed temporary files of uploads that never finished');
    } catch (error) {
      log.warn({ err: error }, 'the blob storage could not be swept at start');
    }
    this.#contentSweep = every(CONTENT_SWEEP_MS, () => this.#sweepContents(storage));
    // In the background: listing a large bucket takes a while, and serving need not wait for it.
    void this.#contentSweep.run();
  }

  async stop() {
    this.#stopping = true;
    await this.#contentSweep?.stop();
  }

  /** Makes the driver without sweeping: for commands (`portico backup`), which run without starting modules. */
  async open(): Promise<BlobStorage> {
    const { settings, env, log } = this.#runtime;
    if (this.#storage) return this.#storage;
    const storage = settings.blobs.storage
      ? await settings.blobs.storage({ dataDir: env.dataDir, log })
      : await storageAt(env, log, this.#runtime.db.store);
    // With tracing on, each call is a span of the request that makes it.
    this.#storage ??= env.tracing ? traceBlobStorage(storage) : storage;
    return this.#storage;
  }

  /** Where the bytes of the current store's blobs are: the remote store's, else the configured driver. */
  get storage(): BlobStorage {
    const held = this.#runtime.store.bytes;
    if (held) return held;
    if (!this.#storage) throw new Error('The blobs module has not started');
    return this.#storage;
  }

  /** Only what is older than this is swept: no upload still running, or about to use its bytes, is that old. */
  #sweepBefore() {
    return new Date(Date.now() - this.#runtime.settings.blobs.sweepAfterSeconds * 1000);
  }

  /**
   * Removes the bytes at content addresses that no blob references (a crash after they were placed
   * and before their row was written, or a failed best-effort cleanup): the store is asked about a
   * batch at a time, and each candidate goes under its content lock only if still unreferenced.
   */
  async #sweepContents(storage: BlobStorage) {
    const { store, storeSwitch, log } = this.#runtime;
    // An edge's bytes are the data server's, which sweeps them itself. An admin-chosen store does
    // not know the blobs of DATABASE_URL's store, whose bytes share the driver: they must stay.
    if (store.bytes || storeSwitch.chosen !== null) return;
    try {
      let collected = 0;
      let batch: StoredContent[] = [];
      for await (const content of storage.contents(this.#sweepBefore())) {
        if (this.#stopping) break;
        batch.push(content);
        if (batch.length < SWEEP_BATCH) continue;
        collected += await this.#collect(storage, batch);
        batch = [];
      }
      collected += await this.#collect(storage, batch);
      if (collected > 0) log.info({ collected }, 'removed stored bytes that no blob references');
    } catch (error) {
      log.warn({ err: error }, 'the sweep of unreferenced blob bytes failed');
    }
  }

  /** Collects those of `batch` the store says no blob references; returns how many were dropped. */
  async #collect(storage: BlobStorage, batch: StoredContent[]) {
    if (batch.length === 0 || this.#stopping) return 0;
    const { blobs } = this.#runtime.store;
    const unreferenced = new Set(await blobs.unreferenced(batch.map((content) => content.sha256)));
    let collected = 0;
    for (const content of batch) {
      if (this.#stopping) break;
      if (!unreferenced.has(content.sha256)) continue;
      await blobs.collect(content, async (sha256) => {
        await storage.delete(sha256);
        collected++;
      });
    }
    return collected;
  }
}
