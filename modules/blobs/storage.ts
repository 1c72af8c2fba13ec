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
// Writes are batched up to this much; reads come in chunks of this size, this many ahead.
const WRITE_BUFFER = 1024 * 1024;
const READ_CHUNK = 1024 * 1024;
const READ_AHEAD = 2;
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
    async stage(source, maxBytes) {
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
          if (!out.write(chunk.value)) await waitForDrain(out);
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
 * `[start, end)` of an open file as a web stream that owns the handle. Each chunk is read into a
 * fresh buffer and handed on as is (Readable.toWeb copies every chunk); a few chunks are read ahead.
 */
function fileStream(
  handle: FileHandle,
  start: number,
  end: number,
  signal: AbortSignal | undefined,
): ReadableStream<Uint8Array> {
  let position = start;
  let closed = false;
  let abandoned = false;
  let stop: (() => void) | undefined;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (stop) signal?.removeEventListener('abort', stop);
    await handle.close().catch(() => {});
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        // Ends the stream quietly: nobody is left to read an error.
        stop = () => {
          abandoned = true;
          controller.close();
          void close();
        };
        if (signal?.aborted) stop();
        else signal?.addEventListener('abort', stop, { once: true });
      },
      async pull(controller) {
        const size = Math.min(READ_CHUNK, end - position);
        if (size <= 0) {
          await close();
          controller.close();
          return;
        }
        try {
          const buffer = Buffer.allocUnsafeSlow(size);
          const { bytesRead } = await handle.read(buffer, 0, size, position);
          if (bytesRead === 0) throw new Error('The blob file is shorter than its size');
          position += bytesRead;
          controller.enqueue(buffer.subarray(0, bytesRead));
        } catch (error) {
          await close();
          if (!abandoned) controller.error(error);
        }
      },
      cancel: close,
    },
    { highWaterMark: READ_AHEAD },
  );
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
