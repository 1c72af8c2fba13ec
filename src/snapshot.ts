import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { SqlEntityManager } from '@mikro-orm/sql';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { type Databases, dialectOf } from './db.ts';
import { STORE_ENTITIES } from './store/sql/schema.ts';
import { fromArchived, type TableRow, type TableShape, tableShapes, toArchived } from './tables.ts';

// Reading and writing whole tables of a SQL database in the archives' form (tables.ts), for
// `portico backup` and `restore`.

const STORE_TABLES = new Set(STORE_ENTITIES.map((entity) => entity.meta.tableName));

/** The system database's tables (without the store's, when both share one database). */
export const systemTableShapes = (databases: Databases) =>
  tableShapes(databases.system.em.getMetadata()).filter((shape) => !STORE_TABLES.has(shape.table));

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * A read-only view of a database as it was at one moment, for as long as it is open, while other
 * connections go on writing: a deferred transaction on its own connection (SQLite in WAL mode keeps
 * its snapshot; the gateway's transactions take the write lock with BEGIN IMMEDIATE, so they must
 * not share it), or a REPEATABLE READ transaction on PostgreSQL. Rows stream in pages.
 */
export interface Snapshot {
  /** The table's rows in primary-key order, archived, in pages of up to `pageSize`. */
  rows(shape: TableShape, pageSize?: number): AsyncIterable<TableRow[]>;
  /** How many rows the table holds. */
  count(shape: TableShape): Promise<number>;
  /** The sum of a number column over the table. */
  sum(shape: TableShape, property: string): Promise<number>;
  /** Ends the snapshot; again is nothing. */
  close(): Promise<void>;
}

const PAGE_SIZE = 1000;

/** Opens a snapshot of the database behind `em` (on a connection of its own). */
export async function openSnapshot(em: SqlEntityManager): Promise<Snapshot> {
  return dialectOf(em) === 'sqlite'
    ? openSqliteSnapshot(em.config.get('dbName'))
    : openPostgresSnapshot(em.config.get('clientUrl') as string);
}

function openSqliteSnapshot(file: string): Snapshot {
  const db = new SqliteDatabase(file, { fileMustExist: true });
  // The gateway may hold the write lock a moment; the snapshot only reads.
  db.pragma('busy_timeout = 5000');
  db.exec('BEGIN DEFERRED');
  return {
    async *rows(shape, pageSize = PAGE_SIZE) {
      const columns = shape.columns.map((column) => quote(column.column)).join(', ');
      const order = shape.primaryKey.map((key) => quote(columnOf(shape, key))).join(', ');
      const statement = db.prepare(`SELECT ${columns} FROM ${quote(shape.table)} ORDER BY ${order}`).raw();
      let page: TableRow[] = [];
      for (const values of statement.iterate() as IterableIterator<unknown[]>) {
        page.push(archivedRow(shape, values));
        if (page.length < pageSize) continue;
        yield page;
        page = [];
        // better-sqlite3 is synchronous: let the process breathe between pages.
        await yieldToEventLoop();
      }
      if (page.length > 0) yield page;
    },
    count: async (shape) =>
      Number(
        db
          .prepare(`SELECT count(*) FROM ${quote(shape.table)}`)
          .pluck()
          .get(),
      ),
    sum: async (shape, property) =>
      Number(
        db
          .prepare(`SELECT coalesce(sum(${quote(columnOf(shape, property))}), 0) FROM ${quote(shape.table)}`)
          .pluck()
          .get(),
      ),
    async close() {
      if (!db.open) return;
      if (db.inTransaction) db.exec('COMMIT');
      db.close();
    },
  };
}

async function openPostgresSnapshot(url: string): Promise<Snapshot> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  } catch (error) {
    await client.end();
    throw error;
  }
  let cursors = 0;
  let closed = false;
  return {
    async *rows(shape, pageSize = PAGE_SIZE) {
      const columns = shape.columns.map((column) => quote(column.column)).join(', ');
      const order = shape.primaryKey.map((key) => quote(columnOf(shape, key))).join(', ');
      const cursor = `portico_snapshot_${++cursors}`;
      await client.query(
        `DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${columns} FROM ${quote(shape.table)} ORDER BY ${order}`,
      );
      try {
        for (;;) {
          const { rows } = await client.query({ text: `FETCH ${pageSize} FROM ${cursor}`, rowMode: 'array' });
          if (rows.length > 0) yield rows.map((values: unknown[]) => archivedRow(shape, values));
          if (rows.length < pageSize) break;
        }
      } finally {
        await client.query(`CLOSE ${cursor}`).catch(() => {});
      }
    },
    async count(shape) {
      const { rows } = await client.query(`SELECT count(*) AS n FROM ${quote(shape.table)}`);
      return Number(rows[0].n);
    },
    async sum(shape, property) {
      const { rows } = await client.query(
        `SELECT coalesce(sum(${quote(columnOf(shape, property))}), 0) AS n FROM ${quote(shape.table)}`,
      );
      return Number(rows[0].n);
    },
    async close() {
      if (closed) return;
      closed = true;
      await client.query('COMMIT').catch(() => {});
      await client.end();
    },
  };
}

const columnOf = (shape: TableShape, property: string) =>
  shape.columns.find((column) => column.property === property)!.column;

function archivedRow(shape: TableShape, values: unknown[]): TableRow {
  const row: TableRow = {};
  shape.columns.forEach((column, i) => {
    row[column.property] = toArchived(column.kind, values[i]);
  });
  return row;
}

/** Inserts archived rows into their table, in the EntityManager's transaction if it has one. */
export async function insertRows(em: SqlEntityManager, shape: TableShape, rows: readonly TableRow[]) {
  if (rows.length === 0) return;
  const values = rows.map((row) => {
    const entity: TableRow = {};
    for (const { property, kind } of shape.columns) entity[property] = fromArchived(kind, row[property]);
    return entity;
  });
  await em.insertMany<object>(shape.entity as never, values);
}

/** Whether any of the tables holds a row. */
export async function anyRows(em: SqlEntityManager, shapes: readonly TableShape[]): Promise<boolean> {
  return (await tablesWithRows(em, shapes)).length > 0;
}

/** The tables that hold a row, by name. */
export async function tablesWithRows(em: SqlEntityManager, shapes: readonly TableShape[]): Promise<string[]> {
  const found: string[] = [];
  for (const shape of shapes) {
    const rows = await em.getConnection().execute<unknown[]>(`SELECT 1 FROM ${quote(shape.table)} LIMIT 1`);
    if (rows.length > 0) found.push(shape.table);
  }
  return found;
}

/** Empties the tables (in the EntityManager's transaction if it has one). */
export async function emptyTables(em: SqlEntityManager, shapes: readonly TableShape[]) {
  for (const shape of shapes) {
    await em
      .getConnection()
      .execute(`DELETE FROM ${quote(shape.table)}`, [], 'run', em.getTransactionContext());
  }
}
