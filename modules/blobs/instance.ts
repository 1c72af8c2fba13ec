import type { BlobStorage, ModuleInstance, Runtime, StagedBlob } from '../../src/index.ts';
import { storageAt } from './storage.ts';

/** A staged upload no gateway has used after this long is dropped. */
const SERVED_UPLOAD_TTL_MS = 60 * 60 * 1000;

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

/** The blobs module in one gateway: the storage driver that holds its bytes, made at start. */
export class BlobFiles implements ModuleInstance {
  readonly #runtime: Runtime;
  #storage: BlobStorage | undefined;
  readonly servedUploads = new ServedUploads(() => this.storage);

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
  }

  /**
   * Makes the driver (a `blobs.storage` factory in code, else BLOB_STORAGE_URL's: a folder, an
   * S3 bucket or the store database) and sweeps leftover uploads.
   */
  async start() {
    const { log } = this.#runtime;
    const storage = await this.open();
    // Storage that does not answer at start (a bucket away) must not keep the gateway from starting:
    // blob operations answer SERVICE_UNAVAILABLE meanwhile, and the next start sweeps.
    try {
      const swept = await storage.sweep();
      if (swept > 0) log.info({ swept }, 'removed temporary files of uploads that never finished');
    } catch (error) {
      log.warn({ err: error }, 'the blob storage could not be swept at start');
    }
  }

  /** Makes the driver without sweeping: for commands (`portico backup`), which run without starting modules. */
  async open(): Promise<BlobStorage> {
    const { settings, env, log } = this.#runtime;
    this.#storage ??= settings.blobs.storage
      ? await settings.blobs.storage({ dataDir: env.dataDir, log })
      : await storageAt(env, log, this.#runtime.db.store);
    return this.#storage;
  }

  /** Where the bytes of the current store's blobs are: the remote store's, else the configured driver. */
  get storage(): BlobStorage {
    const held = this.#runtime.store.bytes;
    if (held) return held;
    if (!this.#storage) throw new Error('The blobs module has not started');
    return this.#storage;
  }
}
