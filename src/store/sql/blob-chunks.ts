import { createHash, randomBytes } from 'node:crypto';
import { TransactionContext } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import { StartupError } from '../../config.ts';
import { type Database, runStatement, selectRows } from '../../db.ts';
import { type BlobStorage, BlobTooLarge, UploadInterrupted } from '../blob-storage.ts';

/**
 * Rows of at most this many bytes: a range read fetches only the rows it covers, an upload or a
 * download holds one or two in memory, and PostgreSQL's TOAST and SQLite's overflow pages store
 * them without a second copy.
 */
export const CHUNK_BYTES = 1024 * 1024;
// Chunks a download fetches ahead of its reader.
const READ_AHEAD = 2;
// Content addresses a sweep asks the store about at a time.
const CONTENTS_PAGE = 1000;

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** An upload in progress; never a content address (no `/` in hex). */
const TEMP_KEY = /^tmp\/[0-9a-f]{24}$/;

/**
 * `BLOB_STORAGE_URL=database`: blob bytes in the store's own SQL database (table `blob_chunks`,
 * schema.ts), so that the instances sharing one database share the bytes with no further service.
 * The kernel holds it, not the blobs module, because the store backend owns every statement on its
 * database. One object is the rows of one address, each a chunk of up to CHUNK_BYTES starting at
 * `position`; an object always has a row at position 0 (empty for an empty blob), so that it
 * exists. Uploads write their chunks under `tmp/<random>`, one short statement per chunk and no
 * transaction held open while the client sends (a slow upload holds no connection); the commit
 * re-keys them to the SHA-256 in one UPDATE, so an address holds all of the bytes or none.
 *
 * The store calls `commit` and `delete` inside its transaction under the content lock (`place`,
 * `drop`): their statements join that transaction (MikroORM's transaction context), so the bytes
 * and the blob row commit or roll back together. They must: on SQLite the store's transaction holds
 * the one connection. Another database's transaction (the system's, or a store an admin switched
 * to) is left alone. Works on both dialects. A database that does not answer throws errors that
 * `isDatabaseUnavailable` recognises (SERVICE_UNAVAILABLE).
 */
export function createDatabaseBlobStorage(database: Database | null): BlobStorage {
  if (!database) {
    throw new StartupError(
      'BLOB_STORAGE_URL=database keeps blob bytes in the store database, but DATABASE_URL names a remote store, which holds its own bytes: unset BLOB_STORAGE_URL',
    );
  }
  /** The transaction of this database the caller runs in, else a connection of its own. */
  const em = (): SqlEntityManager => {
    const root = database.em;
    const current = TransactionContext.currentTransactionContext()?.em;
    return current && current.getDriver() === root.getDriver() ? (current as SqlEntityManager) : root.fork();
  };
  const contentKey = (sha256: string) => {
    if (!SHA256_HEX.test(sha256)) throw new Error('Not a SHA-256 content address');
    return sha256;
  };
  const tempKey = (key: string) => {
    if (!TEMP_KEY.test(key)) throw new Error('Not a temporary blob name');
    return key;
  };
  const drop = (key: string) => runStatement(em(), 'delete from blob_chunks where address = ?', [key]);

  return {
    async stage(source, maxBytes) {
      const key = `tmp/${randomBytes(12).toString('hex')}`;
      const stagedAt = Date.now();
      const hash = createHash('sha256');
      const chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
      let filled = 0;
      let size = 0;
      let written = 0;
      const flush = async () => {
        await runStatement(
          em(),
          'insert into blob_chunks (address, position, staged_at, bytes) values (?, ?, ?, ?)',
          [key, written, stagedAt, chunk.subarray(0, filled)],
        );
        written += filled;
        filled = 0;
      };
      const reader = source.getReader();
      try {
        for (;;) {
          let next: ReadableStreamReadResult<Uint8Array>;
          try {
            next = await reader.read();
          } catch (error) {
            throw new UploadInterrupted(error);
          }
          if (next.done) break;
          size += next.value.byteLength;
          if (size > maxBytes) throw new BlobTooLarge(maxBytes);
          hash.update(next.value);
          for (let offset = 0; offset < next.value.byteLength; ) {
            const taken = Math.min(CHUNK_BYTES - filled, next.value.byteLength - offset);
            chunk.set(next.value.subarray(offset, offset + taken), filled);
            filled += taken;
            offset += taken;
            if (filled === CHUNK_BYTES) await flush();
          }
        }
        // An empty blob still gets its row at position 0.
        if (filled > 0 || written === 0) await flush();
        return { sha256: hash.digest('hex'), size, key };
      } catch (error) {
        // Best effort: rows a failure leaves are an upload that cannot finish, swept at start.
        await drop(key).catch(() => {});
        throw error;
      }
    },

    async commit(staged) {
      const moved = await runStatement(em(), 'update blob_chunks set address = ? where address = ?', [
        contentKey(staged.sha256),
        tempKey(staged.key),
      ]);
      if (moved === 0) throw new Error('The staged upload is gone');
    },

    async discard(staged) {
      await drop(tempKey(staged.key));
    },

    async exists(sha256) {
      const rows = await selectRows(
        em(),
        'select 1 as found from blob_chunks where address = ? and position = 0',
        [contentKey(sha256)],
      );
      return rows.length > 0;
    },

    async read(sha256, range, signal) {
      const address = contentKey(sha256);
      // The chunk holding the first byte wanted (the last one starting at or before it), and where
      // the object ends.
      const [found] = await selectRows<{ first: number | string | null; total: number | string | null }>(
        em(),
        `select (select max(position) from blob_chunks where address = ? and position <= ?) as first,
          (select max(position + length(bytes)) from blob_chunks where address = ?) as total`,
        [address, range?.start ?? 0, address],
      );
      if (found?.first === null || found?.first === undefined) return null;
      const total = Number(found.total);
      return chunkStream({
        fetch: async (position) => {
          const [row] = await selectRows<{ bytes: Uint8Array }>(
            em(),
            'select bytes from blob_chunks where address = ? and position = ?',
            [address, position],
          );
          return row ? row.bytes : null;
        },
        from: Number(found.first),
        start: range?.start ?? 0,
        end: range ? Math.min(range.end + 1, total) : total,
        signal,
      });
    },

    async delete(sha256) {
      await drop(contentKey(sha256));
    },

    async sweep(olderThan) {
      const before = olderThan.getTime();
      const stale = "address like 'tmp/%' and staged_at < ?";
      const [counted] = await selectRows<{ uploads: number | string }>(
        em(),
        `select count(distinct address) as uploads from blob_chunks where ${stale}`,
        [before],
      );
      await runStatement(em(), `delete from blob_chunks where ${stale}`, [before]);
      return Number(counted?.uploads ?? 0);
    },

    async *contents(olderThan) {
      let after = '';
      for (;;) {
        // Keyset pages of the first chunks (an address's write time is its first chunk's).
        const page = await selectRows<{ address: string; size: number | string }>(
          em(),
          `select first.address,
            (select max(c.position + length(c.bytes)) from blob_chunks c where c.address = first.address) as size
           from blob_chunks first
           where first.position = 0 and first.address > ? and first.address not like 'tmp/%' and first.staged_at < ?
           order by first.address limit ${CONTENTS_PAGE}`,
          [after, olderThan.getTime()],
        );
        for (const row of page) yield { sha256: row.address, size: Number(row.size) };
        if (page.length < CONTENTS_PAGE) return;
        after = page.at(-1)!.address;
      }
    },
  };
}

/**
 * Bytes `[start, end)` of an object as a web stream, fetching its chunks one statement each from
 * `from` (the chunk holding `start`), a few ahead, trimming the first and the last. Chunks are
 * contiguous: the next starts where the last ended. A chunk that is missing midway (the blob was
 * deleted while it was being read) fails the stream; `signal` ends it quietly.
 */
function chunkStream({
  fetch,
  from,
  start,
  end,
  signal,
}: {
  fetch: (position: number) => Promise<Uint8Array | null>;
  from: number;
  start: number;
  end: number;
  signal: AbortSignal | undefined;
}): ReadableStream<Uint8Array> {
  let position = from;
  let done = false;
  let stop: (() => void) | undefined;
  const finish = () => {
    done = true;
    if (stop) signal?.removeEventListener('abort', stop);
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        // Nobody is left to read an error.
        stop = () => {
          finish();
          controller.close();
        };
        if (signal?.aborted) stop();
        else signal?.addEventListener('abort', stop, { once: true });
      },
      async pull(controller) {
        if (done) return;
        if (position >= end) {
          finish();
          controller.close();
          return;
        }
        let bytes: Uint8Array | null;
        try {
          bytes = await fetch(position);
          if (done) return;
          if (!bytes) throw new Error('A chunk of the blob is missing: it was deleted while being read');
        } catch (error) {
          if (done) return;
          finish();
          controller.error(error);
          return;
        }
        const chunkStart = position;
        position += bytes.byteLength;
        const wanted = bytes.subarray(
          Math.max(0, start - chunkStart),
          Math.min(bytes.byteLength, end - chunkStart),
        );
        if (wanted.byteLength > 0) controller.enqueue(wanted);
        if (position >= end) {
          finish();
          controller.close();
        }
      },
      cancel: finish,
    },
    { highWaterMark: READ_AHEAD },
  );
}
