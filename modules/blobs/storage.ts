import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, type FileHandle, mkdir, open, opendir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import {
  type BlobStorage,
  BlobTooLarge,
  createDatabaseBlobStorage,
  type Database,
  type Environment,
  type Logger,
  parseBlobStorageUrl,
  UploadInterrupted,
} from '../../src/index.ts';

/** Makes the driver when the module starts; `blobs.storage` in portico.config.ts names another one. */
export type StorageFactory = (context: {
  dataDir: string;
  log: Logger;
}) => BlobStorage | Promise<BlobStorage>;

const SHA256_HEX = /^[0-9a-f]{64}$/;
// `<pid>-<random>`: the sweep can tell whose upload a temporary file was.
const TEMP_NAME = /^(\d+)-[0-9a-f]{24}$/;
// Writes are batched up to this much; a default reader's reads come in chunks of this size.
const WRITE_BUFFER = 1024 * 1024;
const READ_CHUNK = 1024 * 1024;
const SHARD = /^[0-9a-f]{2}$/;

/**
 * The driver BLOB_STORAGE_URL names (HTTP.md, "Blob storage (v2)"): a folder, an S3-compatible
 * bucket, or the store database (`store`: DATABASE_URL's, null for a remote store).
 */
export async function storageAt(env: Environment, log: Logger, store: Database | null): Promise<BlobStorage> {
  const target = parseBlobStorageUrl(env.blobStorageUrl, env.aws.region);
  if (target.kind === 'file') return createFsStorage(target.folder);
  if (target.kind === 'database') return createDatabaseBlobStorage(store);
  const { accessKeyId, secretAccessKey, sessionToken } = env.aws;
  const credentials =
    accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey, sessionToken } : undefined;
  // Loaded only for a bucket: the AWS SDK costs about 35 MiB and 0.3 s at every start otherwise.
  const { createS3Storage } = await import('./s3.ts');
  return createS3Storage(target.location, { credentials, log });
}

/**
 * Blobs as files: `sha256/<first two hex digits>/<sha256>` under `root`, uploads in progress in
 * `tmp/` beside it (one filesystem, so the final rename is atomic). A file reaches its content
 * address only by that rename, after an fsync, followed by an fsync of its folder: after a crash
 * an address holds either the complete bytes or nothing. Names come only from the hex digest.
 */
export async function createFsStorage(root: string): Promise<BlobStorage> {
  const temp = join(root, 'tmp');
  const objects = join(root, 'sha256');
  await mkdir(temp, { recursive: true });
  await mkdir(objects, { recursive: true });
  await syncFolder(root);

  const objectPath = (sha256: string) => {
    if (!SHA256_HEX.test(sha256)) throw new Error('Not a SHA-256 content address');
    return join(objects, sha256.slice(0, 2), sha256);
  };
  const tempPath = (key: string) => {
    if (!TEMP_NAME.test(key)) throw new Error('Not a temporary blob name');
    return join(temp, key);
  };

  return {
    async stage(source, maxBytes, options) {
      const key = `${process.pid}-${randomBytes(12).toString('hex')}`;
      const path = tempPath(key);
      // `flush`: the file is fsynced before it closes.
      const out = createWriteStream(path, {
        flags: 'wx',
        mode: 0o600,
        flush: true,
        highWaterMark: WRITE_BUFFER,
      });
      let failure: Error | undefined;
      out.on('error', (error) => {
        failure ??= error;
      });
      const hash = createHash('sha256');
      let size = 0;
      const reader = source.getReader();
      try {
        for (;;) {
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await reader.read();
          } catch (error) {
            throw new UploadInterrupted(error);
          }
          if (chunk.done) break;
          size += chunk.value.byteLength;
          if (size > maxBytes) throw new BlobTooLarge(maxBytes);
          hash.update(chunk.value);
          if (failure) throw failure;
          const written = options?.disposableChunks ? release(chunk.value) : undefined;
          if (!out.write(chunk.value, written)) await waitForDrain(out);
        }
        out.end();
        await finished(out);
        await closed(out);
        if (failure) throw failure;
        return { sha256: hash.digest('hex'), size, key };
      } catch (error) {
        out.destroy();
        await closed(out);
        await rm(path, { force: true });
        throw error;
      }
    },

    async commit(staged) {
      const target = objectPath(staged.sha256);
      const folder = dirname(target);
      const created = await mkdir(folder, { recursive: true });
      await rename(tempPath(staged.key), target);
      await syncFolder(folder);
      if (created) await syncFolder(objects);
    },

    async discard(staged) {
      await rm(tempPath(staged.key), { force: true });
    },

    async exists(sha256) {
      try {
        await access(objectPath(sha256));
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
    },

    async read(sha256, range, signal) {
      let handle: FileHandle;
      try {
        handle = await open(objectPath(sha256), 'r');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
      const start = range?.start ?? 0;
      const end = range ? range.end + 1 : (await handle.stat()).size;
      return fileStream(handle, start, end, signal);
    },

    async delete(sha256) {
      const path = objectPath(sha256);
      await rm(path, { force: true });
      await syncFolder(dirname(path)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    },

    async sweep(olderThan) {
      let swept = 0;
      for (const name of await readdir(temp)) {
        const match = TEMP_NAME.exec(name);
        const path = join(temp, name);
        if (match) {
          const pid = Number(match[1]);
          // At start nothing of this process is uploading yet: its own pid is a former process's.
          const running = pid !== process.pid && isRunning(pid);
          const stale = (await stat(path)).mtimeMs < olderThan.getTime();
          if (running && !stale) continue;
        }
        await rm(path, { force: true, recursive: true });
        swept++;
      }
      return swept;
    },

    // Folders are read entry by entry (opendir), never listed whole.
    async *contents(olderThan) {
      for await (const shard of await opendir(objects)) {
        if (!shard.isDirectory() || !SHARD.test(shard.name)) continue;
        for await (const entry of await opendir(join(objects, shard.name))) {
          if (!entry.isFile() || !SHA256_HEX.test(entry.name) || !entry.name.startsWith(shard.name)) continue;
          let stats: Awaited<ReturnType<typeof stat>>;
          try {
            stats = await stat(join(objects, shard.name, entry.name));
          } catch (error) {
            // Removed meanwhile: its blob's last reference went.
            if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
            throw error;
          }
          if (stats.mtimeMs < olderThan.getTime()) yield { sha256: entry.name, size: stats.size };
        }
      }
    },
  };
}

/**
 * `[start, end)` of an open file as a byte stream that owns the handle. A BYOB reader's buffers are
 * read into directly (the download route reuses a few, see `streamedResponse`); a default reader
 * gets a fresh READ_CHUNK buffer per read. Nothing is read ahead.
 */
function fileStream(
  handle: FileHandle,
  start: number,
  end: number,
  signal: AbortSignal | undefined,
): ReadableStream<Uint8Array> {
  let position = start;
  let controller: ReadableByteStreamController;
  // A read of the file is under way: its buffer is the stream's until it ends.
  let reading = false;
  // The signal aborted: the stream ends, quietly (nobody is left to read an error).
  let aborted = false;
  // The stream was cancelled, closed or errored: its controller is not touched again.
  let finished = false;
  const close = () => {
    finished = true;
    signal?.removeEventListener('abort', abort);
    return handle.close().catch(() => {});
  };
  /** Ends the stream (a read waiting for bytes gets none) and closes the file. */
  const finish = () => {
    if (finished) return;
    void close();
    controller.close();
    controller.byobRequest?.respond(0);
  };
  function abort() {
    aborted = true;
    // A read under way ends the stream when it is done, so that its buffer is not handed back
    // while the file is still read into it.
    if (!reading) finish();
  }
  return new ReadableStream({
    type: 'bytes',
    autoAllocateChunkSize: READ_CHUNK,
    start(created) {
      controller = created;
      if (signal?.aborted) abort();
      else signal?.addEventListener('abort', abort, { once: true });
    },
    async pull() {
      const request = controller.byobRequest!;
      const { buffer, byteOffset, byteLength } = request.view!;
      const view = new Uint8Array(buffer, byteOffset, byteLength);
      const size = Math.min(view.byteLength, end - position);
      if (size <= 0) {
        finish();
        return;
      }
      let bytesRead: number;
      reading = true;
      try {
        ({ bytesRead } = await handle.read(view, 0, size, position));
        if (bytesRead === 0) throw new Error('The blob file is shorter than its size');
      } catch (error) {
        if (aborted) finish();
        else if (!finished) {
          void close();
          controller.error(error);
        }
        return;
      } finally {
        reading = false;
      }
      if (aborted) finish();
      if (finished) return;
      position += bytesRead;
      request.respond(bytesRead);
    },
    cancel: close,
  });
}

/**
 * A write callback that frees a chunk's memory at once, rather than at the next full garbage
 * collection (V8 runs one after ~64 MiB of such buffers): it detaches the chunk's ArrayBuffer, when
 * the chunk spans all of it (as each of Node's reads of a request body does).
 */
function release(chunk: Uint8Array) {
  return () => {
    const { buffer } = chunk;
    if (!(buffer instanceof ArrayBuffer) || buffer.detached) return;
    if (chunk.byteOffset === 0 && chunk.byteLength === buffer.byteLength) buffer.transfer(0);
  };
}

/** Another gateway on this machine may share the folder: its uploads in progress stay. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Makes the entries of a folder (a rename, an unlink) durable. */
async function syncFolder(path: string) {
  const folder = await open(path, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/** Like `once(out, 'drain')`, but also ends when the stream closes without draining. */
function waitForDrain(out: ReturnType<typeof createWriteStream>) {
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      if (error) reject(error);
      else if (out.destroyed) reject(new Error('The blob file closed while writing'));
      else resolve();
    };
    out.on('drain', done);
    out.on('error', done);
    out.on('close', done);
  });
}

/** Resolves once the stream has closed its file (and, with `flush`, fsynced it). */
function closed(out: ReturnType<typeof createWriteStream>) {
  if (out.closed) return Promise.resolve();
  return new Promise<void>((resolve) => out.once('close', () => resolve()));
}
