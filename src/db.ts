import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionException, type EntitySchema, MikroORM } from '@mikro-orm/core';
import { PostgreSqlPlatform } from '@mikro-orm/postgresql';
import type { SqlEntityManager } from '@mikro-orm/sql';
import type pg from 'pg';
import {
  BoundPostgreSqlDriver,
  BoundSqliteDriver,
  type Dialect,
  type StatementTimer,
  timeStatements,
} from './bound-sql.ts';
import { type DatabaseTarget, type Environment, parseDatabaseUrl, StartupError } from './config.ts';
import { isDatabaseUnavailable } from './errors.ts';
import type { Logger } from './logger.ts';
import { logOutages, type OutageLog } from './outages.ts';
import { ormSql, PostgresSql, type Sql, SqliteSql, type StatementWatch } from './sql.ts';
import type { LockWaitingSqliteConnection } from './sqlite.ts';
import { GatewayIdentitySchema } from './store/remote/identity.ts';
import { isRemoteStoreUrl } from './store/remote/protocol.ts';
import { STORE_ENTITIES } from './store/sql/schema.ts';
import type { GatewayMetrics } from './telemetry/metrics.ts';

export type { Dialect } from './bound-sql.ts';

/** A database of the gateway: its ORM and which dialect it speaks. */
export interface Database {
  readonly orm: MikroORM;
  readonly dialect: Dialect;
  /** The root EntityManager: fork it, never use it directly (`allowGlobalContext` is off). */
  readonly em: SqlEntityManager;
  /** Prepared statements straight on the driver, for the store's hot paths (src/sql.ts). */
  readonly sql: Sql;
}

/** What the SQL store works with: the ORM for its entities, prepared statements for its hot paths. */
export type StoreDatabase = Pick<Database, 'em' | 'sql'>;

export interface Databases {
  /** Identity: users, sessions, roles, tokens, API keys. */
  readonly system: Database;
  /**
   * Business data (collections, blob metadata, leases): the database of the SQL store backend, which
   * owns every statement on it (modules reach it through `runtime.store`). The same object as
   * `system` when both URLs are equal; null when the store is a remote Portico.
   */
  readonly store: Database | null;
  /** Why the system database does not answer a trivial query within the timeout; null when it does. */
  systemProblem(timeoutMs?: number): Promise<string | null>;
  /** Why the store does not answer a trivial query within the timeout (or does not serve yet); null when it does. */
  storeProblem(timeoutMs?: number): Promise<string | null>;
  /**
   * Runs `prepare` (index builds and the like) on the store before it serves: now when the store
   * answered at start, else in the background once it answers, its schema brought up to date first.
   */
  serveStore(prepare: (store: StoreDatabase) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** The dialect behind an EntityManager, for the few statements that differ (row locks, clock). */
export const dialectOf = (em: SqlEntityManager): Dialect =>
  em.getPlatform() instanceof PostgreSqlPlatform ? 'postgresql' : 'sqlite';

/**
 * Raw SQL in the EntityManager's transaction, if it has one: for paths where the ORM's unit of
 * work costs more than the statement. Placeholders are `?` on both dialects.
 */
export const selectRows = <T>(em: SqlEntityManager, sql: string, params: readonly unknown[] = []) =>
  ormSql(em, dialectOf(em)).rows<T>(sql, params);

/** Like `selectRows`, for a statement without rows: how many rows it changed. */
export const runStatement = (em: SqlEntityManager, sql: string, params: readonly unknown[] = []) =>
  ormSql(em, dialectOf(em)).run(sql, params);

/** The outage log, statement timer and exception types of a database's statements, for its `Sql`. */
function statementWatch(orm: MikroORM): StatementWatch {
  const connection = orm.em.getConnection() as unknown as {
    outages?: OutageLog;
    statementSeconds?: StatementTimer;
  };
  const driver = orm.em.getDriver();
  return {
    outages: () => connection.outages,
    seconds: () => connection.statementSeconds,
    convert: (error) => driver.convertException(error as Error),
  };
}

/** A PostgreSQL database's statements, on the ORM's pool. */
const postgresSql = (orm: MikroORM) =>
  new PostgresSql(() => orm.em.getConnection().getNativeClient() as Promise<pg.Pool>, statementWatch(orm));

/** Distinct values in lists for `IN (…)`, each far below SQLite's bound-parameter limit. */
export function inBatches<T>(values: Iterable<T>, size = 1000): T[][] {
  const unique = [...new Set(values)];
  const batches: T[][] = [];
  for (let start = 0; start < unique.length; start += size) batches.push(unique.slice(start, start + size));
  return batches;
}

const POSTGRES_CONNECT_TIMEOUT_MS = 3000;
/** How often a store that did not answer at start is tried again. */
const STORE_RETRY_MS = 2000;

export interface OpenDatabasesOptions {
  env: Pick<Environment, 'databaseUrl' | 'systemDatabaseUrl'>;
  /** The modules, typed by the one thing read of them: db.ts stands below module.ts. */
  modules: readonly { entities?: { system?: EntitySchema[]; store?: EntitySchema[] } }[];
  log: Logger;
  /**
   * The gateway starts without a store of its own that does not answer (docs/operations.md, "Outages"):
   * `serveStore` brings it up once it does, and until then store operations answer
   * SERVICE_UNAVAILABLE. Otherwise (CLI commands), like the system database, it stops the start.
   */
  deferUnreachableStore?: boolean;
  /** Where statement durations are counted; none for commands, which count nothing. */
  metrics?: Pick<GatewayMetrics, 'statementDuration'>;
}

/** Connects both databases and brings their schemas up to date (additive only; see `migrate`). */
export async function openDatabases({
  env,
  modules,
  log,
  deferUnreachableStore = false,
  metrics,
}: OpenDatabasesOptions): Promise<Databases> {
  const systemEntities = [
    GatewayIdentitySchema,
    ...modules.flatMap((module) => module.entities?.system ?? []),
  ];
  const shared = env.systemDatabaseUrl === env.databaseUrl;

  const system = await openDatabase({
    url: env.systemDatabaseUrl,
    // SYSTEM_DATABASE_URL defaults to DATABASE_URL: name the one the operator set.
    variable: shared ? 'DATABASE_URL' : 'SYSTEM_DATABASE_URL',
    entities: shared ? [...systemEntities, ...STORE_ENTITIES] : systemEntities,
    durable: true,
    log: log.child({ db: shared ? 'system+store' : 'system' }),
    metrics,
  });
  let store: Database | null = system;
  let deferred: DeferredStore | undefined;
  if (isRemoteStoreUrl(env.databaseUrl)) {
    store = null;
  } else if (!shared) {
    const storeLog = log.child({ db: 'store' });
    try {
      store = await openDatabase({
        url: env.databaseUrl,
        variable: 'DATABASE_URL',
        entities: STORE_ENTITIES,
        durable: false,
        log: storeLog,
        deferUnreachable: deferUnreachableStore,
        metrics,
      });
    } catch (error) {
      if (!(error instanceof Unreachable)) {
        await closeOrm(system.orm);
        throw error;
      }
      storeLog.warn(
        { err: error.cause },
        `${error.message}: starting without the store; store operations answer SERVICE_UNAVAILABLE until it answers`,
      );
      store = deferred = new DeferredStore(error.orm, error.target, storeLog);
    }
  }

  return {
    system,
    store,
    systemProblem: (timeoutMs = 2000) => problemOf(system, timeoutMs),
    storeProblem: async (timeoutMs = 2000) => (store ? problemOf(store, timeoutMs) : null),
    async serveStore(prepare) {
      if (deferred) deferred.serve(prepare);
      else if (store) await prepare(store);
    },
    async close() {
      await deferred?.stop();
      await closeOrm(system.orm);
      if (store && store !== system) await closeOrm(store.orm);
    },
  };
}

interface OpenDatabaseOptions {
  url: string;
  /** What named `url` (an environment variable, or an admin's switch), for the operator. */
  variable: 'DATABASE_URL' | 'SYSTEM_DATABASE_URL' | 'the store URL';
  entities: EntitySchema[];
  /** `synchronous=FULL` on SQLite: acknowledged identity writes survive power loss. */
  durable: boolean;
  log: Logger;
  /** Throw {@link Unreachable}, with the ORM left open, when a PostgreSQL server does not answer. */
  deferUnreachable?: boolean;
  metrics?: Pick<GatewayMetrics, 'statementDuration'>;
}

type PostgresTarget = Extract<DatabaseTarget, { dialect: 'postgresql' }>;

/** A PostgreSQL database that did not answer at start, with its ORM (which connects on first use). */
class Unreachable extends Error {
  readonly orm: MikroORM;
  readonly target: PostgresTarget;
  constructor(message: string, orm: MikroORM, target: PostgresTarget, cause: unknown) {
    super(message, { cause });
    this.orm = orm;
    this.target = target;
  }
}

async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const { url, entities, durable, log, metrics } = options;
  const target = parseDatabaseUrl(url);
  // Labelled like the log lines: system, store, or system+store.
  const timed = (orm: MikroORM) => {
    if (metrics)
      timeStatements(
        orm,
        metrics.statementDuration.labels(String(log.bindings().db ?? 'database'), target.dialect),
      );
  };
  const common = {
    entities,
    discovery: { warnWhenNoEntities: false },
    forceUtcTimezone: true,
    allowGlobalContext: false,
    logger: (message: string) => log.debug(message),
  };
  if (target.dialect === 'sqlite') {
    if (target.file !== ':memory:') mkdirSync(dirname(target.file), { recursive: true });
    const orm = await MikroORM.init({
      ...common,
      driver: BoundSqliteDriver,
      dbName: target.file,
    });
    const connection = orm.em.getConnection() as unknown as LockWaitingSqliteConnection;
    await connection.execute('pragma journal_mode = WAL');
    await connection.execute(`pragma synchronous = ${durable ? 'FULL' : 'NORMAL'}`);
    logOutages(orm as unknown as MikroORM, log);
    timed(orm as unknown as MikroORM);
    await migrate(orm as unknown as MikroORM, log);
    const sql = new SqliteSql(
      () => {
        if (!connection.lockWaitingDriver)
          throw new ConnectionException(new Error('The database is closed.'));
        return connection.lockWaitingDriver;
      },
      statementWatch(orm as unknown as MikroORM),
      // One file for identity and store (the default): the store's commits skip identity's fsync.
      { relaxedCommits: durable },
    );
    return { orm: orm as unknown as MikroORM, dialect: 'sqlite', em: orm.em as SqlEntityManager, sql };
  }
  const pools = new ClosablePools();
  const orm = (await MikroORM.init({
    ...common,
    driver: BoundPostgreSqlDriver,
    clientUrl: target.url,
    pool: { min: 0, max: 10, idleTimeoutMillis: 30_000 },
    driverOptions: {
      // A pool that cannot connect fails fast (503) instead of queueing requests until they time out.
      connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
      onPoolCreated: pools.adopt,
    },
    // A database that does not exist is the operator's to create: a typo must not make a fresh deployment.
    ensureDatabase: false,
  })) as unknown as MikroORM;
  closablePools.set(orm, pools);
  logOutages(orm, log);
  timed(orm);
  try {
    await migratePostgres(orm, log);
    return { orm, dialect: 'postgresql', em: orm.em as SqlEntityManager, sql: postgresSql(orm) };
  } catch (error) {
    const problem = postgresProblem(error, target, options.variable);
    // A missing database is the operator's to create, not an outage to wait out (one dropped under
    // a running gateway is an outage: isDatabaseUnavailable says so for requests).
    if (options.deferUnreachable && isDatabaseUnavailable(error) && codeIn(error) !== '3D000') {
      throw new Unreachable(firstLine(problem), orm, target, error);
    }
    await closeOrm(orm);
    throw problem;
  }
}

/** How long a closing PostgreSQL database lets its busy connections finish before taking them back. */
const CLOSE_DRAIN_MS = 5000;

type ConnectCallback = (
  error: Error | undefined,
  client: pg.PoolClient | undefined,
  done: () => void,
) => void;

/** What a query gets once its database is closing: an outage (SERVICE_UNAVAILABLE), not a bug. */
const closedDatabase = () =>
  Object.assign(new Error('The database connection is closed: the gateway is stopping.'), {
    code: '08003', // SQLSTATE connection_does_not_exist
  });

/**
 * The pg pools of a PostgreSQL database, closed so that a shutdown cannot hang. MikroORM's Kysely
 * (0.29.6) forgets its pool before ending it: a connection whose connect completes during
 * `orm.close()` is never given back, and `pool.end()` waits for it forever (a background query
 * begun just before a shutdown was enough). So a closing database first refuses new connections,
 * lets the busy ones finish for up to CLOSE_DRAIN_MS, takes back those still out (their queries
 * fail), and only then lets the ORM end the pool. A pool that MikroORM makes for a query after the
 * close refuses too, so nothing reconnects.
 */
class ClosablePools {
  readonly #pools = new Set<pg.Pool>();
  readonly #checkedOut = new Set<pg.PoolClient>();
  #closing = false;

  /** MikroORM's `onPoolCreated` hook. */
  readonly adopt = (pool: pg.Pool) => {
    const connect = pool.connect.bind(pool) as (
      callback?: ConnectCallback,
    ) => Promise<pg.PoolClient> | undefined;
    pool.connect = ((callback?: ConnectCallback) => {
      if (!this.#closing) return connect(callback);
      if (!callback) return Promise.reject(closedDatabase());
      callback(closedDatabase(), undefined, () => {});
    }) as typeof pool.connect;
    pool.on('acquire', (client) => this.#checkedOut.add(client));
    pool.on('release', (_error, client) => this.#checkedOut.delete(client));
    this.#pools.add(pool);
  };

  async close() {
    this.#closing = true;
    const deadline = Date.now() + CLOSE_DRAIN_MS;
    while (!this.#quiet() && Date.now() < deadline) await sleep(10);
    // Released with an error, a client is closed and leaves its pool, which can then end.
    for (const client of this.#checkedOut) client.release(closedDatabase());
  }

  /** No client is connecting or checked out, and no one waits for one. */
  #quiet() {
    return [...this.#pools].every((pool) => pool.waitingCount === 0 && pool.idleCount === pool.totalCount);
  }
}

const closablePools = new WeakMap<MikroORM, ClosablePools>();

/** Closes an ORM; a PostgreSQL one once its pools are quiet (see ClosablePools). */
async function closeOrm(orm: MikroORM) {
  await closablePools.get(orm)?.close();
  await orm.close(true);
}

/**
 * `migrate`, once the database is known to exist: MikroORM's schema update would otherwise create it
 * (`ensureDatabase` of its schema generator runs whatever the option says).
 */
async function migratePostgres(orm: MikroORM, log: Logger) {
  await orm.em.getConnection().execute('select 1');
  await migrate(orm, log);
}

/** What stops a PostgreSQL database from being used, as one line for the operator (unknown errors as they are). */
function postgresProblem(error: unknown, target: PostgresTarget, variable: string) {
  const url = new URL(target.url);
  const host = url.hostname;
  const port = url.port || '5432';
  const user = decodeURIComponent(url.username);
  const name = decodeURIComponent(url.pathname.slice(1)) || user;
  const code = codeIn(error);
  if (code === '3D000') {
    return new StartupError(
      `${variable}: the PostgreSQL database "${name}" does not exist on ${host}:${port}; create it ` +
        `(createdb -h ${host} -p ${port}${user ? ` -U ${user}` : ''} ${name}, or CREATE DATABASE "${name}" in psql) and start again`,
    );
  }
  if (code === '28P01' || code === '28000') {
    return new StartupError(`${variable}: PostgreSQL at ${host}:${port} refused the login: ${reason(error)}`);
  }
  if (isDatabaseUnavailable(error)) {
    return new StartupError(
      `${variable}: cannot connect to PostgreSQL at ${host}:${port} (${reason(error)})`,
      { cause: error },
    );
  }
  return error;
}

const firstLine = (error: unknown) => String((error as Error)?.message ?? error).split('\n')[0] ?? '';

/** The driver's message, or its code when it has none (an AggregateError of every address tried). */
const reason = (error: unknown) => firstLine(error) || String(codeIn(error) ?? 'no answer');

/** The first `code` along an error's causes (pg's SQLSTATE, which MikroORM's exceptions copy). */
function codeIn(error: unknown): unknown {
  for (let current = error, depth = 0; current && typeof current === 'object' && depth < 6; depth++) {
    const { code, cause } = current as { code?: unknown; cause?: unknown };
    if (code !== undefined) return code;
    current = cause;
  }
  return undefined;
}

/**
 * A store that did not answer at start. Its `em` refuses with a ConnectionException (an outage:
 * SERVICE_UNAVAILABLE) until `serve` has brought it up: tried every STORE_RETRY_MS, each try brings
 * the schema up to date and runs the modules' preparation (index builds) before it serves, so no
 * request sees a half-prepared store.
 */
class DeferredStore implements Database {
  readonly orm: MikroORM;
  readonly dialect = 'postgresql';
  readonly #target: PostgresTarget;
  readonly #log: Logger;
  readonly #sql: Sql;
  #serving = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #attempt: Promise<void> | undefined;

  constructor(orm: MikroORM, target: PostgresTarget, log: Logger) {
    this.orm = orm;
    this.#target = target;
    this.#log = log;
    this.#sql = postgresSql(orm);
  }

  get em(): SqlEntityManager {
    this.#checkServing();
    return this.orm.em as SqlEntityManager;
  }

  get sql(): Sql {
    this.#checkServing();
    return this.#sql;
  }

  #checkServing() {
    if (!this.#serving) {
      throw new ConnectionException(new Error('The store database has not answered since the start.'));
    }
  }

  serve(prepare: (store: StoreDatabase) => Promise<void>) {
    const tryAgain = () => {
      this.#attempt = this.#bringUp(prepare);
      void this.#attempt.then(() => {
        if (!this.#serving && !this.#stopped) this.#timer = setTimeout(tryAgain, STORE_RETRY_MS).unref();
      });
    };
    this.#timer = setTimeout(tryAgain, STORE_RETRY_MS).unref();
  }

  async stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#attempt;
  }

  async #bringUp(prepare: (store: StoreDatabase) => Promise<void>) {
    try {
      await migratePostgres(this.orm, this.#log);
      await prepare({ em: this.orm.em as SqlEntityManager, sql: this.#sql });
      this.#serving = true;
      this.#log.info('the store database answers: store operations are served');
    } catch (error) {
      if (isDatabaseUnavailable(error)) return;
      const problem = postgresProblem(error, this.#target, 'DATABASE_URL');
      this.#log.error({ err: error }, `the store cannot be served yet: ${firstLine(problem)}`);
    }
  }
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

/**
 * A store database an admin switches to while the gateway runs: connected, its schema brought up
 * to date. Throws what `openDatabases` throws for DATABASE_URL (a StartupError that says why).
 */
export const openStoreDatabase = (
  url: string,
  log: Logger,
  metrics?: Pick<GatewayMetrics, 'statementDuration'>,
) => openDatabase({ url, variable: 'the store URL', entities: STORE_ENTITIES, durable: false, log, metrics });

/** Closes a database `openStoreDatabase` opened, letting its busy connections finish first. */
export const closeDatabase = (database: Database) => closeOrm(database.orm);

/** Null when the database answers a trivial query within the timeout, else why not. */
export async function problemOf(database: Database, timeoutMs = 2000): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      database.em
        .getConnection()
        .execute('select 1')
        .then(() => null),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
      }),
    ]);
  } catch (error) {
    return reason(error);
  } finally {
    clearTimeout(timer);
  }
}
