import { stat } from 'node:fs/promises';
import {
  type ArchivedStoreTable,
  type BlobStorage,
  emptyTables,
  insertRows,
  type Runtime,
  systemTableShapes,
  type TableShape,
  tablesWithRows,
} from '../../src/index.ts';
import { ArchiveProblem, type ArchiveSummary, readArchive } from './archive.ts';
import type { Progress } from './progress.ts';

/** The target cannot take this archive (not empty, or other tables): nothing was changed. */
export class RestoreRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreRefused';
  }
}

export interface Restored {
  summary: ArchiveSummary;
  rows: number;
  blobs: number;
  blobBytes: number;
  durationMs: number;
}

/**
 * Restores an archive into this deployment's databases and blob storage, which must be empty
 * (else `force` empties them first). The archive is read twice: checked whole before anything
 * changes, so a damaged or truncated file changes nothing; then loaded, every blob's bytes checked
 * against their SHA-256 again as they land. The store's index entries are built at the end, as an
 * index build at start would.
 */
export async function restoreBackup(
  runtime: Runtime,
  storage: BlobStorage,
  file: string,
  { force }: { force: boolean },
  progress: Progress,
): Promise<Restored> {
  const began = Date.now();
  const { size } = await stat(file).catch(() => ({ size: 0 }));
  const showChecked = progress.bar('checking', size, 'bytes');
  const summary = await readArchive(file, { progress: showChecked });

  const system = runtime.db.system.em;
  const targetShapes = systemTableShapes(runtime.db);
  const systemShapes = matchShapes('system', summary.header.tables.system, targetShapes);
  matchShapes('store', summary.header.tables.store, await runtime.store.archive.shapes());
  if (!force) {
    // The gateway id is made by any command that reaches a data server: it is not data.
    const holding = await tablesWithRows(
      system.fork(),
      targetShapes.filter((shape) => shape.table !== 'gateway_identity'),
    );
    if (holding.length > 0) {
      throw new RestoreRefused(
        `the system database is not empty (${holding.join(', ')} hold rows): restore into an empty deployment, or pass --force to replace what it holds`,
      );
    }
    if (!(await runtime.store.archive.isEmpty())) {
      throw new RestoreRefused(
        'the store is not empty: restore into an empty deployment, or pass --force to replace what it holds',
      );
    }
  }

  const showRestored = progress.bar('restoring', size, 'bytes');
  await system.fork().transactional((tx) => emptyTables(tx, targetShapes));
  await runtime.store.archive.clear();
  let rows = 0;
  let blobs = 0;
  let blobBytes = 0;
  await readArchive(file, {
    progress: showRestored,
    async rows(part, shape, page) {
      if (part === 'system') {
        await system.fork().transactional((tx) => insertRows(tx, systemShapes.get(shape.table)!, page));
      } else {
        await runtime.store.archive.load(shape.table as ArchivedStoreTable, page);
      }
      rows += page.length;
    },
    async blob(sha256, size, bytes) {
      const staged = await storage.stage(bytes, Number.MAX_SAFE_INTEGER);
      if (staged.sha256 !== sha256 || staged.size !== size) {
        await storage.discard(staged);
        throw new ArchiveProblem(`${file}: blob ${sha256} changed while it was restored`);
      }
      if (await storage.exists(sha256)) await storage.discard(staged);
      else await storage.commit(staged);
      blobs++;
      blobBytes += size;
    },
  });
  await runtime.store.archive.loaded();
  for (const module of runtime.modules) await runtime.instances.of(module).prepareStore?.(runtime.store);
  return { summary, rows, blobs, blobBytes, durationMs: Date.now() - began };
}

/**
 * The target's shape of each archived table, checked: the table exists with every archived column
 * of the same kind (a newer schema may add columns; they stay null). Throws RestoreRefused otherwise.
 */
function matchShapes(part: string, archived: readonly TableShape[], target: readonly TableShape[]) {
  const byTable = new Map(target.map((shape) => [shape.table, shape]));
  const matched = new Map<string, TableShape>();
  for (const shape of archived) {
    const mine = byTable.get(shape.table);
    if (!mine) {
      throw new RestoreRefused(
        `the archive holds the ${part} table "${shape.table}", which this deployment lacks (is a module missing from its configuration?)`,
      );
    }
    for (const column of shape.columns) {
      const same = mine.columns.find((candidate) => candidate.property === column.property);
      if (same?.kind !== column.kind) {
        throw new RestoreRefused(
          `the ${part} table "${shape.table}" has no ${column.kind} column "${column.property}" here: the archive is of another schema`,
        );
      }
    }
    matched.set(shape.table, mine);
  }
  return matched;
}
