import { DriverException } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import { isDatabaseUnavailable, PorticoError } from '../../errors.ts';
import { anyRows, emptyTables, insertRows, openSnapshot } from '../../snapshot.ts';
import { type TableRow, type TableShape, tableShapes } from '../../tables.ts';
import {
  ARCHIVED_STORE_TABLES,
  type ArchivedStoreTable,
  type StoreArchive,
  type StoreArchiveItem,
} from '../backend.ts';

/** The store's archived tables, and the derived ones a restore rebuilds. */
const shapesOf = (em: SqlEntityManager) => {
  const all = new Map(tableShapes(em.getMetadata()).map((shape) => [shape.table, shape]));
  const archived = ARCHIVED_STORE_TABLES.map((table) => all.get(table)!);
  const derived = ['index_entries', 'built_indexes'].map((table) => all.get(table)!);
  return { archived, derived };
};

/** `StoreArchive` on the SQL store: a snapshot on a connection of its own, rows in through the ORM. */
export function sqlArchive(fork: () => SqlEntityManager): StoreArchive {
  return {
    async *export(): AsyncIterable<StoreArchiveItem> {
      const em = fork();
      const { archived } = shapesOf(em);
      const snapshot = await openSnapshot(em);
      try {
        const rows = {} as Record<ArchivedStoreTable, number>;
        for (const shape of archived) rows[shape.table as ArchivedStoreTable] = await snapshot.count(shape);
        const blobBytes = await snapshot.sum(archived[0]!, 'size');
        yield { kind: 'start', shapes: archived, rows, blobBytes };
        for (const shape of archived) {
          for await (const page of snapshot.rows(shape)) {
            yield { kind: 'rows', table: shape.table as ArchivedStoreTable, rows: page };
          }
        }
      } finally {
        await snapshot.close();
      }
    },
    shapes: async () => shapesOf(fork()).archived,
    isEmpty: async () => !(await anyRows(fork(), shapesOf(fork()).archived)),
    async clear() {
      const em = fork();
      const { archived, derived } = shapesOf(em);
      await em.transactional((tx) => emptyTables(tx, [...derived, ...archived]));
    },
    async load(table: ArchivedStoreTable, rows: readonly TableRow[]) {
      const em = fork();
      const shape: TableShape = shapesOf(em).archived.find((candidate) => candidate.table === table)!;
      try {
        await em.transactional((tx) => insertRows(tx, shape, rows));
      } catch (error) {
        // The archive's fault (a duplicate key, a value too long for its column), not the database's.
        if (error instanceof DriverException && !isDatabaseUnavailable(error)) {
          // The ORM's message starts with the statement, every row's values in it: the database's reason only.
          const reason = error.message.split(' - ').at(-1);
          throw new PorticoError('BAD_USER_INPUT', `The ${table} rows do not fit the store: ${reason}`);
        }
        throw error;
      }
    },
    // `documents.prepare`, which the restore runs next, builds the index entries.
    loaded: async () => {},
  };
}
