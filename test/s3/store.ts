// The test S3 server's buckets, objects and multipart uploads: bytes in files, each record in a
// JSON file beside them, all of it indexed in memory and read back when the server starts again.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { Checksum, ChecksumAlgorithm } from './payload.ts';

export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT';

/** What S3 keeps with an object besides its bytes. */
export interface ObjectAttributes {
  contentType: string;
  /** Content-Encoding, Content-Disposition, Cache-Control, Content-Language, Expires: as given. */
  headers: Record<string, string>;
  /** x-amz-meta-* by lower-cased name, prefix included. */
  metadata: Record<string, string>;
}

export interface ObjectRecord extends ObjectAttributes {
  key: string;
  size: number;
  /** Quoted, as S3 sends it. */
  etag: string;
  /** Whole seconds, as S3 keeps it. */
  lastModified: number;
  checksum: (Checksum & { type: ChecksumType }) | undefined;
  /** The data file's name in the bucket's folder. */
  file: string;
}

export interface PartRecord {
  number: number;
  size: number;
  etag: string;
  md5: string;
  lastModified: number;
  checksum: Checksum | undefined;
  file: string;
}

export interface UploadRecord extends ObjectAttributes {
  id: string;
  bucket: string;
  key: string;
  initiated: number;
  checksum: { algorithm: ChecksumAlgorithm; type: ChecksumType } | undefined;
  parts: Map<number, PartRecord>;
}

interface BucketRecord {
  name: string;
  created: number;
  objects: Map<string, ObjectRecord>;
}

/** Runs tasks one after the other per key: a check and the write it guards cannot interleave. */
class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const result = (this.#tails.get(key) ?? Promise.resolve()).then(task);
    const tail = result.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

export class Store {
  readonly #root: string;
  readonly #buckets = new Map<string, BucketRecord>();
  readonly #uploads = new Map<string, UploadRecord>();
  readonly #queue = new KeyedQueue();

  private constructor(root: string) {
    this.#root = root;
  }

  /** Opens the store in `root`, reading back what an earlier server left; leftovers are removed. */
  static async open(root: string): Promise<Store> {
    const store = new Store(root);
    await rm(store.#tmp, { recursive: true, force: true });
    for (const folder of [store.#tmp, join(root, 'buckets'), join(root, 'uploads')]) {
      await mkdir(folder, { recursive: true });
    }
    await store.#load();
    return store;
  }

  get #tmp(): string {
    return join(this.#root, 'tmp');
  }

  #bucketFolder(bucket: string): string {
    return join(this.#root, 'buckets', bucket);
  }

  #uploadFolder(id: string): string {
    return join(this.#root, 'uploads', id);
  }

  async #load(): Promise<void> {
    for (const name of await readdir(join(this.#root, 'buckets'))) {
      const folder = this.#bucketFolder(name);
      const files = await readdir(folder);
      if (!files.includes('bucket.json')) {
        await rm(folder, { recursive: true, force: true });
        continue;
      }
      const { created } = JSON.parse(await readFile(join(folder, 'bucket.json'), 'utf8')) as {
        created: number;
      };
      const bucket: BucketRecord = { name, created, objects: new Map() };
      for (const file of files.filter((file) => file.endsWith('.object.json'))) {
        const record = JSON.parse(await readFile(join(folder, file), 'utf8')) as ObjectRecord;
        bucket.objects.set(record.key, record);
      }
      const referenced = new Set([...bucket.objects.values()].map((record) => record.file));
      await removeUnreferenced(folder, files, referenced);
      this.#buckets.set(name, bucket);
    }
    for (const id of await readdir(join(this.#root, 'uploads'))) {
      const folder = this.#uploadFolder(id);
      const files = await readdir(folder);
      if (!files.includes('upload.json')) {
        await rm(folder, { recursive: true, force: true });
        continue;
      }
      const upload = JSON.parse(await readFile(join(folder, 'upload.json'), 'utf8')) as UploadRecord;
      upload.parts = new Map();
      for (const file of files.filter((file) => file.endsWith('.part.json'))) {
        const part = JSON.parse(await readFile(join(folder, file), 'utf8')) as PartRecord;
        upload.parts.set(part.number, part);
      }
      const referenced = new Set([...upload.parts.values()].map((part) => part.file));
      await removeUnreferenced(folder, files, referenced);
      this.#uploads.set(id, upload);
    }
  }

  /** A fresh path for bytes being received, to be committed by a rename. */
  tempPath(): string {
    return join(this.#tmp, randomUUID());
  }

  buckets(): { name: string; created: number }[] {
    return [...this.#buckets.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  hasBucket(bucket: string): boolean {
    return this.#buckets.has(bucket);
  }

  async createBucket(name: string): Promise<void> {
    const created = wholeSeconds(Date.now());
    this.#buckets.set(name, { name, created, objects: new Map() });
    await mkdir(this.#bucketFolder(name), { recursive: true });
    await writeJson(join(this.#bucketFolder(name), 'bucket.json'), { created });
  }

  /** Removes an empty bucket; false if it holds objects. */
  async deleteBucket(name: string): Promise<boolean> {
    const bucket = this.#buckets.get(name);
    if (!bucket || bucket.objects.size > 0) return false;
    this.#buckets.delete(name);
    for (const upload of this.uploads(name))
      await this.withUpload(upload.id, () => this.removeUpload(upload.id));
    await rm(this.#bucketFolder(name), { recursive: true, force: true });
    return true;
  }

  object(bucket: string, key: string): ObjectRecord | undefined {
    return this.#buckets.get(bucket)?.objects.get(key);
  }

  /** The bucket's objects, in the byte order of their UTF-8 keys as S3 lists them. */
  objects(bucket: string): ObjectRecord[] {
    return [...(this.#buckets.get(bucket)?.objects.values() ?? [])].sort((a, b) => compareKeys(a.key, b.key));
  }

  /**
   * An object's record and its bytes opened together: an object replaced or deleted meanwhile is
   * looked up again, so the bytes always belong to the record.
   */
  async openObject(
    bucket: string,
    key: string,
  ): Promise<{ record: ObjectRecord; handle: FileHandle } | undefined> {
    for (;;) {
      const record = this.object(bucket, key);
      if (!record) return undefined;
      try {
        return { record, handle: await open(join(this.#bucketFolder(bucket), record.file)) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  }

  /**
   * Makes the bytes at `tempPath` the object `record.key`, once `check` (given the object it
   * replaces) has passed; checks and writes of one key take turns.
   */
  putObject(
    bucket: string,
    record: Omit<ObjectRecord, 'file'>,
    tempPath: string,
    check: (existing: ObjectRecord | undefined) => void,
  ): Promise<ObjectRecord> {
    return this.#queue.run(`${bucket}/${record.key}`, async () => {
      const objects = this.#buckets.get(bucket)?.objects;
      if (!objects) throw new Error(`No bucket ${bucket}`);
      const existing = objects.get(record.key);
      check(existing);
      const file = `${randomUUID()}.data`;
      const folder = this.#bucketFolder(bucket);
      await rename(tempPath, join(folder, file));
      const committed = { ...record, file };
      await writeJson(join(folder, objectFileName(record.key)), committed);
      objects.set(record.key, committed);
      if (existing) await unlink(join(folder, existing.file));
      return committed;
    });
  }

  deleteObject(bucket: string, key: string): Promise<void> {
    return this.#queue.run(`${bucket}/${key}`, async () => {
      const objects = this.#buckets.get(bucket)?.objects;
      const existing = objects?.get(key);
      if (!objects || !existing) return;
      const folder = this.#bucketFolder(bucket);
      await unlink(join(folder, objectFileName(key)));
      objects.delete(key);
      await unlink(join(folder, existing.file));
    });
  }

  upload(id: string): UploadRecord | undefined {
    return this.#uploads.get(id);
  }

  /** The bucket's uploads in progress, by key and then by time of creation, as S3 lists them. */
  uploads(bucket: string): UploadRecord[] {
    return [...this.#uploads.values()]
      .filter((upload) => upload.bucket === bucket)
      .sort((a, b) => compareKeys(a.key, b.key) || a.initiated - b.initiated || (a.id < b.id ? -1 : 1));
  }

  async createUpload(fields: Omit<UploadRecord, 'id' | 'initiated' | 'parts'>): Promise<UploadRecord> {
    // S3's upload IDs are long and opaque; these are URL-safe like theirs.
    const upload: UploadRecord = {
      ...fields,
      id: randomBytes(48).toString('base64url'),
      initiated: Date.now(),
      parts: new Map(),
    };
    await mkdir(this.#uploadFolder(upload.id));
    await writeJson(join(this.#uploadFolder(upload.id), 'upload.json'), { ...upload, parts: undefined });
    this.#uploads.set(upload.id, upload);
    return upload;
  }

  /** Makes the bytes at `tempPath` the upload's part `part.number`, replacing an earlier one. */
  putPart(id: string, part: Omit<PartRecord, 'file'>, tempPath: string): Promise<PartRecord | undefined> {
    return this.#queue.run(`upload:${id}`, async () => {
      const upload = this.#uploads.get(id);
      if (!upload) return undefined;
      const folder = this.#uploadFolder(id);
      const file = `${randomUUID()}.data`;
      await rename(tempPath, join(folder, file));
      const committed = { ...part, file };
      await writeJson(join(folder, `${part.number}.part.json`), committed);
      const existing = upload.parts.get(part.number);
      upload.parts.set(part.number, committed);
      if (existing) await unlink(join(folder, existing.file));
      return committed;
    });
  }

  partPath(id: string, part: PartRecord): string {
    return join(this.#uploadFolder(id), part.file);
  }

  /** Runs `task` with the upload to itself: no part is written, and no other task runs, meanwhile. */
  withUpload<T>(id: string, task: (upload: UploadRecord | undefined) => Promise<T>): Promise<T> {
    return this.#queue.run(`upload:${id}`, () => task(this.#uploads.get(id)));
  }

  /** Forgets an upload and its parts; call it inside `withUpload`. */
  async removeUpload(id: string): Promise<void> {
    this.#uploads.delete(id);
    await rm(this.#uploadFolder(id), { recursive: true, force: true });
  }
}

/** UTF-8 byte order: JavaScript's own string order differs from it past U+FFFF. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function wholeSeconds(time: number): number {
  return Math.floor(time / 1000) * 1000;
}

function objectFileName(key: string): string {
  return `${createHash('sha256').update(key).digest('hex')}.object.json`;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  const temp = `${path}.${randomUUID()}.tmp`;
  await writeFile(temp, JSON.stringify(value));
  await rename(temp, path);
}

/** Data files no record names, and half-written records: what a killed server left behind. */
async function removeUnreferenced(folder: string, files: string[], referenced: Set<string>): Promise<void> {
  for (const file of files) {
    if ((file.endsWith('.data') && !referenced.has(file)) || file.endsWith('.tmp'))
      await unlink(join(folder, file));
  }
}
