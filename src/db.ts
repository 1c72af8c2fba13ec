import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { type EntitySchema, MikroORM } from '@mikro-orm/core';
import { PostgreSqlDriver, PostgreSqlPlatform } from '@mikro-orm/postgresql';
import type { AbstractSqlDriver, SqlEntityManager } from '@mikro-orm/sql';
import type { Environment } from './config.ts';
import type { Logger } from './logger.ts';
import type { PorticoModule } from './module.ts';
import { LockWaitingSqliteDriver } from './sqlite.ts';

export type Dialect = 'sqlite' | 'postgresql';

/** A database of the gateway: its ORM and which dialect it speaks. */
export interface Database {
  readonly orm: MikroORM;
  readonly dialect: Dialect;
  /** The root EntityManager: fork it, never use it directly (`allowGlobalContext` is off). */
  readonly em: SqlEntityManager;
}

export interface Databases {
  /** Identity: users, sessions, roles, tokens, API keys. */
  readonly system: Database;
  /** Business data: collections, blob metadata, leases. The same object as `system` when both URLs are equal. */
  readonly store: Database;
  /** True when each database answers a trivial query within the timeout. */
  ping(timeoutMs?: number): Promise<{ system: boolean; store: boolean }>;
  close(): Promise<void>;
}

/** The dialect behind an EntityManager, for the few statements that differ (row locks, clock). */
export const dialectOf = (em: SqlEntityManager): Dialect =>
  em.getPlatform() instanceof PostgreSqlPlatform ? 'postgresql' : 'sqlite';

/**
 * Raw SQL in the EntityManager's transaction, if it has one: for hot paths where the ORM's unit of
 * work costs more than the statement. Placeholders are `?` on both dialects.
 */
export const selectRows = <T>(em: SqlEntityManager, sql: string, params: readonly unknown[] = []) =>
  em.getConnection().execute<T[]>(sql, [...params], 'all', em.getTransactionContext());

/** Like `selectRows`, for a statement without rows: how many rows it changed. */
export const runStatement = async (em: SqlEntityManager, sql: string, params: readonly unknown[] = []) =>
  (
    await em
      .getConnection()
      .execute<{ affectedRows: number }>(sql, [...params], 'run', em.getTransactionContext())
  ).affectedRows;

/** Distinct values in lists for `IN (…)`, each far below SQLite's bound-parameter limit. */
export function inBatches<T>(values: Iterable<T>, size = 1000): T[][] {
  const unique = [...new Set(values)];
  const batches: T[][] = [];
  for (let start = 0; start < unique.length; start += size) batches.push(unique.slice(start, start + size));
  return batches;
}

const POSTGRES_CONNECT_TIMEOUT_MS = 3000;

type Target = { dialect: 'sqlite'; file: string } | { dialect: 'postgresql'; url: string };

/** `postgres://…` or `postgresql://…` for PostgreSQL; `sqlite:<path>`, `file:<path>` or a bare path for SQLite. */
export function parseDatabaseUrl(url: string): Target {
  if (/^postgres(ql)?:\/\//i.test(url)) return { dialect: 'postgresql', url };
  const file = url.replace(/^(sqlite|file):(\/\/)?/i, '');
  if (!file) throw new Error(`Database URL "${url}" names no file`);
  return { dialect: 'sqlite', file };
}

export interface OpenDatabasesOptions {
  env: Pick<Environment, 'databaseUrl' | 'systemDatabaseUrl'>;
  modules: readonly PorticoModule[];
  log: Logger;
}

/** Connects both databases and brings their schemas up to date (additive only; see `migrate`). */
export async function openDatabases({ env, modules, log }: OpenDatabasesOptions): Promise<Databases> {
  const systemEntities = modules.flatMap((module) => module.entities?.system ?? []);
  const storeEntities = modules.flatMap((module) => module.entities?.store ?? []);
  const shared = env.systemDatabaseUrl === env.databaseUrl;

  const system = await openDatabase({
    url: env.systemDatabaseUrl,
    entities: shared ? [...systemEntities, ...storeEntities] : systemEntities,
    durable: true,
    log: log.child({ db: shared ? 'system+store' : 'system' }),
  });
  let store = system;
  if (!shared) {
    try {
      store = await openDatabase({
        url: env.databaseUrl,
        entities: storeEntities,
        durable: false,
        log: log.child({ db: 'store' }),
      });
    } catch (error) {
      await system.orm.close(true);
      throw error;
    }
  }

  return {
    system,
    store,
    async ping(timeoutMs = 2000) {
      const [systemUp, storeUp] = await Promise.all([
        answers(system, timeoutMs),
        store === system ? undefined : answers(store, timeoutMs),
      ]);
      return { system: systemUp, store: storeUp ?? systemUp };
    },
    async close() {
      await system.orm.close(true);
      if (store !== system) await store.orm.close(true);
    },
  };
}

interface OpenDatabaseOptions {
  url: string;
  entities: EntitySchema[];
  /** `synchronous=FULL` on SQLite: acknowledged identity writes survive power loss. */
  durable: boolean;
  log: Logger;
}

async function openDatabase({ url, entities, durable, log }: OpenDatabaseOptions): Promise<Database> {
  const target = parseDatabaseUrl(url);
  const common = {
    entities,
    discovery: { warnWhenNoEntities: false },
    forceUtcTimezone: true,
    allowGlobalContext: false,
    logger: (message: string) => log.debug(message),
  };
  let orm: MikroORM<AbstractSqlDriver>;
  if (target.dialect === 'sqlite') {
    if (target.file !== ':memory:') mkdirSync(dirname(target.file), { recursive: true });
    orm = await MikroORM.init({
      ...common,
      driver: LockWaitingSqliteDriver,
      dbName: target.file,
    });
    const connection = orm.em.getConnection();
    await connection.execute('pragma journal_mode = WAL');
    await connection.execute(`pragma synchronous = ${durable ? 'FULL' : 'NORMAL'}`);
  } else {
    orm = await MikroORM.init({
      ...common,
      driver: PostgreSqlDriver,
      clientUrl: target.url,
      pool: { min: 0, max: 10, idleTimeoutMillis: 30_000 },
      // A pool that cannot connect fails fast (503) instead of queueing requests until they time out.
      driverOptions: { connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS },
    });
  }
  await migrate(orm, log);
  return { orm: orm as unknown as MikroORM, dialect: target.dialect, em: orm.em as SqlEntityManager };
}

/**
 * Brings the schema up to date with the composed modules' entities. Additive only:
 * `safe` never drops a column and `dropTables: false` never drops a table, so a
 * module removed from the configuration keeps its data. Safe to run on every start.
 */
export async function migrate(orm: MikroORM, log: Logger): Promise<string[]> {
  const sql = await orm.schema.getUpdateSchemaSQL({ safe: true, dropTables: false, wrap: false });
  const statements = sql
    .split(/;\s*\n/)
    .map((statement) => statement.trim())
    .filter((statement) => statement && !/^pragma foreign_keys/i.test(statement));
  if (statements.length === 0) return [];
  log.info({ statements: statements.length }, 'updating database schema');
  await orm.schema.update({ safe: true, dropTables: false });
  return statements;
}

async function answers(database: Database, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      database.em
        .getConnection()
        .execute('select 1')
        .then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
