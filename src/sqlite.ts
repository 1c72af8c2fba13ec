import { setTimeout as sleep } from 'node:timers/promises';
import type { Configuration, Dictionary } from '@mikro-orm/core';
import { AbstractSqlDriver, SqlitePlatform } from '@mikro-orm/sql';
import { SqliteConnection } from '@mikro-orm/sqlite';
import type { CompiledQuery, DatabaseConnection, Driver, QueryCompiler, QueryResult } from 'kysely';

/**
 * How long a statement or transaction waits for another process's write lock (another instance on
 * the same file, a backup, an operator's shell) before it fails as an outage (SERVICE_UNAVAILABLE).
 */
export const SQLITE_LOCK_WAIT_MS = 5000;
const MAX_RETRY_DELAY_MS = 25;

/** The parts of better-sqlite3's `Database` used here. */
interface NativeDatabase {
  readonly inTransaction: boolean;
  prepare(sql: string): NativeStatement;
}

/** A better-sqlite3 prepared statement. */
export interface NativeStatement {
  /** It changes nothing. */
  readonly readonly: boolean;
  all(...parameters: unknown[]): unknown[];
  run(...parameters: unknown[]): { changes: number };
}

/** Prepared statements kept per connection; the store's statements are far fewer than this. */
const MAX_PREPARED_STATEMENTS = 500;

const isBusy = (error: unknown) =>
  typeof (error as { code?: unknown })?.code === 'string' &&
  (error as { code: string }).code.startsWith('SQLITE_BUSY');

/** 1, 2, 4 … ms, then every 25 ms: a lock released soon is taken soon, a long one costs little. */
const retryDelay = (attempt: number) => Math.min(2 ** attempt, MAX_RETRY_DELAY_MS);

/** A first-come, first-served lock on the one SQLite connection: a transaction holds it to its end. */
class ConnectionLock {
  #held = false;
  readonly #waiting: (() => void)[] = [];

  async acquire(): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#held = false;
  }
}

/**
 * Kysely's SQLite driver waits for the write lock inside SQLite's busy handler, which blocks the
 * event loop (better-sqlite3 is synchronous), and holds its connection mutex while it waits, so
 * every other query of the process queues behind it. This one runs with no busy timeout and waits
 * between attempts asynchronously, holding nothing: `/health` and reads go on meanwhile.
 *
 * Transactions start with `BEGIN IMMEDIATE`, taking the write lock before their first read, so
 * nothing inside them can meet a busy database later; retrying the `BEGIN` and statements outside a
 * transaction is safe, as a failed attempt changed nothing.
 */
export class LockWaitingDriver implements Driver {
  readonly #inner: Driver;
  readonly #database: NativeDatabase;
  readonly #lock = new ConnectionLock();
  readonly #statements = new Map<string, NativeStatement>();
  /** A transaction holds the lock: from a successful BEGIN to its COMMIT or ROLLBACK. */
  #transactionOpen = false;
  /** The open transaction commits without an fsync (`begin(true)`). */
  #relaxed = false;
  #connection: DatabaseConnection | undefined;

  constructor(inner: Driver, database: NativeDatabase) {
    this.#inner = inner;
    this.#database = database;
  }

  async init(): Promise<void> {
    await this.#inner.init();
    this.#connection = await this.#inner.acquireConnection();
  }

  /** A handle per use; the one connection behind them is shared under the lock. */
  async acquireConnection(): Promise<LockWaitingConnection> {
    return new LockWaitingConnection(this);
  }

  async releaseConnection(): Promise<void> {}

  /**
   * The statement prepared once for this connection: SQLite compiles a statement's text in about as
   * long as it takes to run a small one. The oldest is dropped past MAX_PREPARED_STATEMENTS.
   */
  statement(sql: string): NativeStatement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#database.prepare(sql);
      if (this.#statements.size >= MAX_PREPARED_STATEMENTS)
        this.#statements.delete(this.#statements.keys().next().value!);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `run` (statements outside a transaction) once the process's open transaction has ended. */
  alone<T>(run: () => T): Promise<T> {
    return this.#withLockWait(async () => {
      await this.#lock.acquire();
      try {
        return run();
      } finally {
        this.#lock.release();
      }
    });
  }

  /**
   * Opens the connection's transaction: the lock first, then SQLite's write lock, waiting out
   * another process's. A `relaxed` transaction commits without waiting for an fsync on a database
   * that otherwise does (`synchronous=FULL`): the next durable commit's fsync covers it, as the WAL
   * is written in order. It is lost only to a power cut before then, like every commit of a
   * `synchronous=NORMAL` database.
   */
  async begin(relaxed = false): Promise<void> {
    await this.#withLockWait(async () => {
      await this.#lock.acquire();
      try {
        // SQLite refuses to change it inside a transaction.
        if (relaxed) this.statement('pragma synchronous = normal').run();
        this.#relaxed = relaxed;
        this.statement('begin immediate').run();
      } catch (error) {
        try {
          this.#restoreSynchronous();
        } finally {
          this.#lock.release();
        }
        throw error;
      }
      this.#transactionOpen = true;
    });
  }

  commit(): void {
    try {
      this.statement('commit').run();
    } finally {
      // A failed commit leaves the transaction open for the caller's rollback, unless SQLite ended it.
      if (!this.#database.inTransaction) this.#end();
    }
  }

  rollback(): void {
    try {
      if (this.#database.inTransaction) this.statement('rollback').run();
    } finally {
      this.#end();
    }
  }

  /** Whether SQLite still has the transaction open (a failed statement can end it). */
  get inTransaction(): boolean {
    return this.#database.inTransaction;
  }

  async beginTransaction(connection: LockWaitingConnection): Promise<void> {
    await this.begin();
    connection.inTransaction = true;
  }

  async commitTransaction(connection: LockWaitingConnection): Promise<void> {
    try {
      this.commit();
    } finally {
      connection.inTransaction = this.#transactionOpen;
    }
  }

  async rollbackTransaction(connection: LockWaitingConnection): Promise<void> {
    try {
      this.rollback();
    } finally {
      connection.inTransaction = false;
    }
  }

  savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    return this.#inner.savepoint!(connection, name, compile);
  }

  rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    return this.#inner.rollbackToSavepoint!(connection, name, compile);
  }

  releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    return this.#inner.releaseSavepoint!(connection, name, compile);
  }

  destroy(): Promise<void> {
    return this.#inner.destroy();
  }

  /** One statement outside a transaction: it waits for the process's open transaction to end. */
  execute<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.#withLockWait(async () => {
      await this.#lock.acquire();
      try {
        return await this.#connection!.executeQuery<R>(query);
      } finally {
        this.#lock.release();
      }
    });
  }

  async *stream<R>(query: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
    await this.#lock.acquire();
    try {
      yield* this.#connection!.streamQuery<R>(query, chunkSize);
    } finally {
      this.#lock.release();
    }
  }

  /** Within a transaction: it holds the lock already. */
  executeInTransaction<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.#connection!.executeQuery<R>(query);
  }

  streamInTransaction<R>(query: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
    return this.#connection!.streamQuery<R>(query, chunkSize);
  }

  /** Retries `attempt` while the database is busy and outside a transaction, until the deadline. */
  async #withLockWait<T>(attempt: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + SQLITE_LOCK_WAIT_MS;
    for (let attempts = 0; ; attempts++) {
      try {
        return await attempt();
      } catch (error) {
        if (!isBusy(error) || this.#database.inTransaction || Date.now() >= deadline) throw error;
      }
      await sleep(Math.min(retryDelay(attempts), Math.max(0, deadline - Date.now())));
    }
  }

  #end() {
    if (!this.#transactionOpen) return;
    this.#transactionOpen = false;
    try {
      // Before the lock goes: no other transaction may commit relaxed by mistake.
      this.#restoreSynchronous();
    } finally {
      this.#lock.release();
    }
  }

  #restoreSynchronous() {
    if (!this.#relaxed) return;
    this.#relaxed = false;
    this.statement('pragma synchronous = full').run();
  }
}

class LockWaitingConnection implements DatabaseConnection {
  /** True from a successful BEGIN to its COMMIT or ROLLBACK. */
  inTransaction = false;
  readonly #driver: LockWaitingDriver;

  constructor(driver: LockWaitingDriver) {
    this.#driver = driver;
  }

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.inTransaction ? this.#driver.executeInTransaction<R>(query) : this.#driver.execute<R>(query);
  }

  streamQuery<R>(query: CompiledQuery, chunkSize = 100): AsyncIterableIterator<QueryResult<R>> {
    return this.inTransaction
      ? this.#driver.streamInTransaction<R>(query, chunkSize)
      : this.#driver.stream<R>(query, chunkSize);
  }
}

type KyselyDialect = ReturnType<SqliteConnection['createKyselyDialect']>;

/** MikroORM's better-sqlite3 connection behind the {@link LockWaitingDriver}. */
export class LockWaitingSqliteConnection extends SqliteConnection {
  /** The driver of the open database, which the store's prepared statements go through (src/sql.ts). */
  lockWaitingDriver: LockWaitingDriver | undefined;

  override async close(force?: boolean): Promise<void> {
    // Statements sent after this are an outage (the gateway is stopping), not a reconnect.
    this.lockWaitingDriver = undefined;
    await super.close(force);
  }

  override createKyselyDialect(options: Dictionary): KyselyDialect {
    const dialect = super.createKyselyDialect({ ...options, timeout: 0 });
    // The parent keeps the better-sqlite3 handle it just opened in a field TypeScript calls private.
    const { database } = this as unknown as { database: NativeDatabase };
    return {
      // MikroORM bundles its own copy of Kysely: the same driver interface, declared twice.
      createDriver: () => {
        this.lockWaitingDriver = new LockWaitingDriver(dialect.createDriver() as unknown as Driver, database);
        return this.lockWaitingDriver as unknown as ReturnType<KyselyDialect['createDriver']>;
      },
      createQueryCompiler: () => dialect.createQueryCompiler(),
      createIntrospector: (db) => dialect.createIntrospector(db),
      // Kysely's own connection mutex would hold every query behind a transaction waiting for the lock.
      createAdapter: () =>
        Object.create(dialect.createAdapter(), { supportsMultipleConnections: { value: true } }),
    };
  }
}

/** MikroORM's SQLite driver (better-sqlite3) whose lock waits never block the event loop. */
export class LockWaitingSqliteDriver extends AbstractSqlDriver<LockWaitingSqliteConnection> {
  constructor(config: Configuration) {
    super(config, new SqlitePlatform(), LockWaitingSqliteConnection, ['kysely', 'better-sqlite3']);
  }
}
