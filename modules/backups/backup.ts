import { resolve } from 'node:path';
import {
  type BlobStorage,
  newId,
  openSnapshot,
  type Runtime,
  type StoreArchiveItem,
  systemTableShapes,
} from '../../src/index.ts';
import { type ArchiveHeader, ArchiveWriter, FORMAT, FORMAT_VERSION } from './archive.ts';
import { BackupRun } from './entities.ts';
import type { Progress } from './progress.ts';

export interface BackupTaken {
  file: string;
  bytes: number;
  rows: number;
  /** Blob contents deleted while the backup ran, left out. */
  leftOut: number;
  blobs: number;
  blobBytes: number;
  durationMs: number;
}

/** Where blob bytes live, for the archive's header. */
const blobStorageKind = (runtime: Runtime) =>
  runtime.store.bytes ? 'remote' : (/^([a-z0-9]+):/i.exec(runtime.env.blobStorageUrl)?.[1] ?? 'database');

/**
 * Takes one archive of the system database, the store, and the blob bytes the store's snapshot
 * references, while the gateway goes on serving: each database is read in a snapshot of its own
 * (blobs are immutable and content-addressed, so the snapshot's list of contents decides which
 * bytes go in). Records the run in the system database for the console.
 */
export async function takeBackup(
  runtime: Runtime,
  storage: BlobStorage,
  target: string,
  progress: Progress,
): Promise<BackupTaken> {
  const began = Date.now();
  const file = resolve(target);
  const systemShapes = systemTableShapes(runtime.db);
  const system = await openSnapshot(runtime.db.system.em);
  const store = runtime.store.archive.export()[Symbol.asyncIterator]();
  let writer: ArchiveWriter | undefined;
  try {
    const systemRows: Record<string, number> = {};
    for (const shape of systemShapes) systemRows[`system/${shape.table}`] = await system.count(shape);
    const start = (await store.next()).value as Extract<StoreArchiveItem, { kind: 'start' }> | undefined;
    if (start?.kind !== 'start') throw new Error('the store gave no snapshot');
    const storeRows = Object.fromEntries(
      Object.entries(start.rows).map(([table, count]) => [`store/${table}`, count]),
    );
    const header: ArchiveHeader = {
      format: FORMAT,
      version: FORMAT_VERSION,
      createdAt: new Date(began).toISOString(),
      source: {
        system: runtime.db.system.dialect === 'postgresql' ? 'postgres' : 'sqlite',
        store: runtime.store.about.kind,
        blobStorage: blobStorageKind(runtime),
      },
      tables: { system: systemShapes, store: start.shapes },
      expected: {
        rows: { ...systemRows, ...storeRows },
        blobs: start.rows.blob_contents,
        blobBytes: start.blobBytes,
      },
    };
    writer = await ArchiveWriter.create(file, header);

    const totalRows = Object.values(header.expected.rows).reduce((sum, count) => sum + count, 0);
    const showRows = progress.bar('rows', totalRows, 'rows');
    const showBytes = progress.bar('blob bytes', start.blobBytes, 'bytes');
    let rows = 0;
    let blobBytes = 0;
    async function* counted(bytes: AsyncIterable<Uint8Array>) {
      for await (const chunk of bytes) {
        blobBytes += chunk.byteLength;
        showBytes(blobBytes);
        yield chunk;
      }
    }

    for (const shape of systemShapes) {
      for await (const page of system.rows(shape)) {
        await writer.rows('system', shape.table, page);
        rows += page.length;
        showRows(rows);
      }
    }
    await system.close();

    // Contents whose bytes went with the last blob deleted since the snapshot began: left out, as
    // the blob rows that name them (their deletion, committed while the backup ran, is kept).
    const leftOut = new Set<string>();
    for (let item = await store.next(); !item.done; item = await store.next()) {
      const page = item.value;
      if (page.kind !== 'rows') throw new Error('the store gave a second snapshot');
      let pageRows = page.rows;
      if (page.table === 'blob_contents') {
        for (const content of page.rows) {
          const sha256 = content.sha256 as string;
          const size = content.size as number;
          const bytes = await storage.read(sha256);
          if (bytes) {
            await writer.blob(sha256, size, counted(bytes));
          } else if ((await runtime.store.blobs.unreferenced([sha256])).length > 0) {
            leftOut.add(sha256);
            writer.leaveOut();
          } else {
            throw new Error(`the blob storage has no bytes for content ${sha256}, which blobs reference`);
          }
        }
      }
      if (leftOut.size > 0 && (page.table === 'blob_contents' || page.table === 'blobs')) {
        pageRows = page.rows.filter((row) => !leftOut.has(row.sha256 as string));
      }
      await writer.rows('store', page.table, pageRows);
      rows += pageRows.length;
      showRows(rows);
    }
    const bytes = await writer.finish();
    const taken = {
      file,
      bytes,
      rows,
      leftOut: leftOut.size,
      blobs: start.rows.blob_contents - leftOut.size,
      blobBytes,
      durationMs: Date.now() - began,
    };
    await recordRun(runtime, taken);
    return taken;
  } catch (error) {
    await writer?.abandon();
    await store.return?.();
    throw error;
  } finally {
    await system.close().catch(() => {});
  }
}

async function recordRun(runtime: Runtime, taken: BackupTaken) {
  const em = runtime.db.system.em.fork();
  em.create(BackupRun, {
    id: newId(),
    finishedAt: new Date(),
    file: taken.file,
    bytes: taken.bytes,
    rows: taken.rows,
    blobs: taken.blobs,
    durationMs: taken.durationMs,
  });
  await em.flush();
}
