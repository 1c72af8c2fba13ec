import type { IncomingMessage } from 'node:http';
import { PorticoError, serviceUnavailable } from '../../errors.ts';
import type { TableRow, TableShape } from '../../tables.ts';
import type { ArchivedStoreTable, StoreArchive, StoreArchiveItem } from '../backend.ts';
import { errorOfWire, type RemoteConnection, servingCalls } from './connection.ts';
import type { WireArchiveLine } from './protocol.ts';
import { MAX_CALL_BYTES } from './serve.ts';

/**
 * Rows go to the data server in calls of about this much JSON: half its limit, so that a call
 * that takes one more row (a document of up to 1 MiB, escaped once more) still fits.
 */
const LOAD_CALL_BYTES = MAX_CALL_BYTES / 2;

/**
 * The data server's store as archives carry it (`/store/v1/archive/…`, which need a key with the
 * scope `admin`): its snapshot streamed as NDJSON, read as the backup consumes it, so the data
 * server's snapshot stays open while this side copies blob bytes, and closes when the iteration
 * ends. Owners and holders come and go in this gateway's terms, as in document reads and writes.
 */
export function remoteArchive(connection: RemoteConnection, notServing: () => string | null): StoreArchive {
  const { gate, call } = servingCalls(connection, notServing);
  return {
    async *export(): AsyncIterable<StoreArchiveItem> {
      gate();
      const abort = new AbortController();
      let ended = false;
      try {
        const response = await connection.request({
          method: 'POST',
          path: '/archive/export',
          body: '{}',
          signal: abort.signal,
          long: true,
        });
        for await (const line of linesOf(response)) {
          const item = JSON.parse(line) as WireArchiveLine;
          if (item.kind === 'end') {
            ended = true;
            return;
          }
          if (item.kind === 'error') throw errorOfWire(0, item.error);
          yield item;
        }
        throw serviceUnavailable(
          "The store does not answer: the data server's snapshot ended before it was complete.",
        );
      } catch (error) {
        if (error instanceof PorticoError) throw error;
        // The connection broke midway.
        const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        throw serviceUnavailable(`The store does not answer: the data server's snapshot broke off (${why}).`);
      } finally {
        // Ended early (or failed): the request goes, and with it the data server's snapshot.
        if (!ended) abort.abort();
      }
    },
    shapes: async () => (await call<{ shapes: TableShape[] }>('/archive/shapes', {})).shapes,
    isEmpty: async () => (await call<{ empty: boolean }>('/archive/empty', {})).empty,
    async clear() {
      await call('/archive/clear', {});
    },
    async load(table: ArchivedStoreTable, rows: readonly TableRow[]) {
      for (const batch of batchesOf(rows)) await call('/archive/load', { table, rows: batch });
    },
    async loaded() {
      await call('/archive/loaded', {});
    },
  };
}

/** Rows in batches of about LOAD_CALL_BYTES of JSON (one row alone when it is larger). */
function* batchesOf(rows: readonly TableRow[]): Generator<TableRow[]> {
  let batch: TableRow[] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = Buffer.byteLength(JSON.stringify(row));
    if (batch.length > 0 && bytes + size > LOAD_CALL_BYTES) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(row);
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}

/**
 * The lines of an NDJSON response, read only as fast as they are consumed (readline's iterator
 * reads ahead whatever arrives, which here could be much of the store).
 */
async function* linesOf(response: IncomingMessage): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of response) {
    pending += decoder.decode(chunk as Buffer, { stream: true });
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line) yield line;
      newline = pending.indexOf('\n');
    }
  }
  pending += decoder.decode();
  if (pending) yield pending;
}
