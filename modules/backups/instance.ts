import type { BlobStorage, ModuleInstance, Runtime } from '../../src/index.ts';
import { BackupRun } from './entities.ts';

/** The blobs module's instance, as far as backups use it. */
interface BlobFiles {
  open(): Promise<unknown>;
  readonly storage: BlobStorage;
}

/** The store module's instance, as far as backups use it. */
interface StoreAdmin {
  useChosenStore(): Promise<void>;
  keepCurrentChoice(): Promise<void>;
}

/** The backups module in one gateway: what its commands and `lastBackup` need. */
export class Backups implements ModuleInstance {
  readonly runtime: Runtime;
  readonly #files: BlobFiles;
  readonly #store: StoreAdmin;

  constructor(runtime: Runtime, files: BlobFiles, store: StoreAdmin) {
    this.runtime = runtime;
    this.#files = files;
    this.#store = store;
  }

  /** Says in the start log when the last backup was taken: a deployment without one should know. */
  async start() {
    const last = await this.last();
    if (last) this.runtime.log.info({ lastBackup: last.finishedAt, file: last.file }, 'last backup');
    else
      this.runtime.log.info('no backup of this deployment was taken yet (portico backup; docs/backups.md)');
  }

  /** For a command: the store the gateway serves (an admin's choice applies) and its blob storage. */
  async open() {
    await this.#store.useChosenStore();
    await this.#files.open();
    return { storage: this.#files.storage };
  }

  /** After a restore: the store the data went to stays this deployment's choice (see the store module). */
  keepStoreChoice() {
    return this.#store.keepCurrentChoice();
  }

  /** The backup finished last, if any. */
  async last(): Promise<BackupRun | null> {
    const [run] = await this.runtime.db.system.em
      .fork()
      .find(BackupRun, {}, { orderBy: { finishedAt: 'desc' }, limit: 1 });
    return run ?? null;
  }
}
