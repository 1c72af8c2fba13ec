import type { ModuleInstance, Runtime } from '../../src/index.ts';
import { type BlobStorage, defaultStorage } from './storage.ts';

/** The blobs module in one gateway: the storage driver that holds its bytes, made at start. */
export class BlobFiles implements ModuleInstance {
  readonly #runtime: Runtime;
  #storage: BlobStorage | undefined;

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
  }

  /** Makes the configured driver (the filesystem by default) and sweeps leftover uploads. */
  async start() {
    const { settings, env, log } = this.#runtime;
    const factory = settings.blobs.storage ?? defaultStorage;
    const storage = await factory({ dataDir: env.dataDir, log });
    const swept = await storage.sweep();
    if (swept > 0) log.info({ swept }, 'removed temporary files of uploads that never finished');
    this.#storage = storage;
  }

  get storage(): BlobStorage {
    if (!this.#storage) throw new Error('The blobs module has not started');
    return this.#storage;
  }
}
