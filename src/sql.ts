import { createHash } from 'node:crypto';
import type { SqlEntityManager } from '@mikro-orm/sql';
import type pg from 'pg';
import { type Dialect, driverValue } from './bound-sql.ts';
import type { OutageLog } from './outages.ts';
import type { LockWaitingDriver, NativeStatement } from './sqlite.ts';
import { traceStatement } from './telemetry/tracing.ts';

/**
 * Statements on a database, for the store's hot paths: the ORM's unit of work, entity manager and
 * query pipeline cost far more than these statements (BENCHMARKS.md, "Store paths"). Placeholders
 * are `?` on both dialects; every value is a bound parameter.
 */
export interface Sql {
  readonly dialect: Dialect;
  /** The rows of a statement: a SELECT, or a write with RETURNING. */
  rows<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** How many rows a statement without result rows changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /**
   * Runs `work` in one transaction (a savepoint within one): committed when it resolves, rolled
   * back when it throws. `work` uses only the `tx` it is given.
   */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
}

/**
 * `limit <count>` for a row count the caller computed (a checked page size). The one number written
 * into a statement's text: SQLite plans a statement anew on every run when its LIMIT is a bound
 * parameter, which costs more than running it. Anything but a whole number from 0 up is refused.
 */
export function limitClause(count: number): string {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`Not a row count: ${count}`);
  return `limit ${count}`;
}

/** What every statement passes through: the outage log, the statement timer, the trace, the ORM's exception types. */
export interface StatementWatch {
  outages(): OutageLog | undefined;
  seconds(): { observe(seconds: number): void } | undefined;
  /** A driver error as the ORM throws it (UniqueConstraintViolationException, …). */
  convert(error: unknown): Error;
}

async function watched<T>(dialect: Dialect, watch: StatementWatch, sql: string, run: () => T | Promise<T>) {
  const started = performance.now();
  try {
    const result = await traceStatement(dialect, sql, async () => run());
    watch.outages()?.settled(started);
    return result;
  } catch (error) {
    watch.outages()?.settled(started, error);
    throw watch.convert(error);
  } finally {
    watch.seconds()?.observe((performance.now() - started) / 1000);
  }
}

const bindAll = (params: readonly unknown[], dialect: Dialect) =>
  params.map((value) => driverValue(value, dialect));

// ---------------------------------------------------------------- SQLite

/** At most this many transactions share one commit. */
const MAX_GROUP = 64;

interface Member {
  work: (tx: Sql) => Promise<unknown>;
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

/**
 * SQLite's statements prepared once and run straight on better-sqlite3, under the one connection's
 * lock (src/sqlite.ts), so no statement lands inside another request's transaction.
 *
 * Group commit: SQLite runs one write transaction at a time, and each COMMIT costs a WAL write (and
 * an fsync under `synchronous=FULL`). Transactions that arrive while one commits queue up, and the
 * next commit takes all of them: one BEGIN IMMEDIATE, each transaction in a SAVEPOINT of its own,
 * one COMMIT. A transaction that throws is rolled back to its savepoint and rejects alone, so it
 * changes no other's result; the others resolve only once their COMMIT succeeded. A write
 * statement outside a transaction joins a group the same way.
 */
export class SqliteSql implements Sql {
  readonly dialect = 'sqlite';
  readonly #driver: () => LockWaitingDriver;
  readonly #watch: StatementWatch;
  readonly #relaxedCommits: boolean;
  readonly #queue: Member[] = [];
  #committing = false;

  /**
   * `relaxedCommits`: the database is durable (`synchronous=FULL`, it holds identity), and these
   * statements are the store's, which may commit as a `synchronous=NORMAL` store database would.
   */
  constructor(driver: () => LockWaitingDriver, watch: StatementWatch, { relaxedCommits = false } = {}) {
    this.#driver = driver;
    this.#watch = watch;
    this.#relaxedCommits = relaxedCommits;
  }

  async rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const statement = await this.#prepared(sql);
    if (!statement.readonly) return this.transaction((tx) => tx.rows<T>(sql, params));
    const values = bindAll(params, 'sqlite');
    return watched('sqlite', this.#watch, sql, () =>
      this.#driver().alone(() => statement.all(...values) as T[]),
    );
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    const statement = await this.#prepared(sql);
    if (!statement.readonly) return this.transaction((tx) => tx.run(sql, params));
    const values = bindAll(params, 'sqlite');
    return watched('sqlite', this.#watch, sql, () =>
      this.#driver().alone(() => statement.run(...values).changes),
    );
  }

  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (result: unknown) => void, reject });
      // The group starts once this turn of the event loop has read every request it could, so
      // the transactions of requests that arrived together share it.
      if (!this.#committing) {
        this.#committing = true;
        setImmediate(() => void this.#commitQueued());
      }
    });
  }

  /** A statement's preparation fails as its running would (a syntax error, a missing table, a closed database). */
  #prepared(sql: string): Promise<NativeStatement> | NativeStatement {
    try {
      return this.#driver().statement(sql);
    } catch (error) {
      return watched('sqlite', this.#watch, sql, () => {
        throw error;
      });
    }
  }

  async #commitQueued() {
    try {
      while (this.#queue.length > 0) await this.#commitGroup(this.#queue.splice(0, MAX_GROUP));
    } finally {
      this.#committing = false;
    }
  }

  async #commitGroup(group: Member[]) {
    let driver: LockWaitingDriver;
    try {
      driver = this.#driver();
      await watched('sqlite', this.#watch, 'begin immediate', () => driver.begin(this.#relaxedCommits));
    } catch (error) {
      for (const member of group) member.reject(error);
      return;
    }
    const tx = new SqliteTransaction(driver, this.#watch);
    const succeeded: { member: Member; result: unknown }[] = [];
    try {
      for (const [at, member] of group.entries()) {
        try {
          succeeded.push({ member, result: await tx.transaction(member.work) });
        } catch (error) {
          member.reject(error);
          // A failure SQLite answers by ending the whole transaction took the others' writes with it.
          if (!driver.inTransaction) {
            this.#queue.unshift(...group.slice(at + 1));
            throw error;
          }
        }
      }
      await watched('sqlite', this.#watch, 'commit', () => driver.commit());
    } catch (error) {
      try {
        driver.rollback();
      } catch {
        // The transaction is gone either way (a closed database); the error below says why.
      }
      for (const { member } of succeeded) member.reject(error);
      return;
    }
    for (const { member, result } of succeeded) member.resolve(result);
  }
}

/** Statements inside the open transaction, which holds the connection's lock. */
class SqliteTransaction implements Sql {
  readonly dialect = 'sqlite';
  readonly #driver: LockWaitingDriver;
  readonly #watch: StatementWatch;
  #savepoints = 0;

  constructor(driver: LockWaitingDriver, watch: StatementWatch) {
    this.#driver = driver;
    this.#watch = watch;
  }

  rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return watched('sqlite', this.#watch, sql, () =>
      this.#driver.statement(sql).all(...bindAll(params, 'sqlite')),
    ) as Promise<T[]>;
  }

  run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return watched(
      'sqlite',
      this.#watch,
      sql,
      () => this.#driver.statement(sql).run(...bindAll(params, 'sqlite')).changes,
    );
  }

  async transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    const name = `s${this.#savepoints++}`;
    this.#driver.statement(`savepoint ${name}`).run();
    try {
      const result = await work(this);
      this.#driver.statement(`release ${name}`).run();
      return result;
    } catch (error) {
      if (this.#driver.inTransaction) {
        this.#driver.statement(`rollback to ${name}`).run();
        this.#driver.statement(`release ${name}`).run();
      }
      throw error;
    } finally {
      this.#savepoints--;
    }
  }
}

// ---------------------------------------------------------------- PostgreSQL

/** `?` placeholders as `$1, $2, …`, and the name its prepared statement goes by on every connection. */
interface PostgresText {
  text: string;
  name: string;
}

const postgresTexts = new Map<string, PostgresText>();
const MAX_POSTGRES_TEXTS = 500;

function postgresText(sql: string): PostgresText {
  let known = postgresTexts.get(sql);
  if (!known) {
    let count = 0;
    const text = sql.replace(/\?/g, () => `$${++count}`);
    // pg prepares a named statement once per connection and reuses it: parsed and planned once.
    known = { text, name: `portico_${createHash('sha1').update(text).digest('hex').slice(0, 24)}` };
    if (postgresTexts.size >= MAX_POSTGRES_TEXTS) postgresTexts.delete(postgresTexts.keys().next().value!);
    postgresTexts.set(sql, known);
  }
  return known;
}

type Queryable = Pick<pg.PoolClient, 'query'>;

/** One statement, watched under the text PostgreSQL receives (`$1`, not `?`). */
function query(
  watch: StatementWatch,
  client: () => Queryable | Promise<Queryable>,
  sql: string,
  params: readonly unknown[],
) {
  const { text, name } = postgresText(sql);
  return watched('postgresql', watch, text, async () =>
    (await client()).query({ name, text, values: bindAll(params, 'postgresql') }),
  );
}

/**
 * PostgreSQL's statements on the ORM's own pg pool, as named prepared statements. Each transaction
 * holds one pooled connection from BEGIN to COMMIT; the database orders concurrent ones.
 */
export class PostgresSql implements Sql {
  readonly dialect = 'postgresql';
  readonly #pool: () => Promise<pg.Pool>;
  readonly #watch: StatementWatch;

  constructor(pool: () => Promise<pg.Pool>, watch: StatementWatch) {
    this.#pool = pool;
    this.#watch = watch;
  }

  async rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await query(this.#watch, this.#pool, sql, params)).rows as T[];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await query(this.#watch, this.#pool, sql, params)).rowCount ?? 0;
  }

  async transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    const client = await watched('postgresql', this.#watch, 'begin', async () => {
      const connected = await (await this.#pool()).connect();
      try {
        await connected.query('begin');
      } catch (error) {
        connected.release(error as Error);
        throw error;
      }
      return connected;
    });
    let broken: Error | undefined;
    try {
      const result = await work(new PostgresTransaction(client, this.#watch));
      await watched('postgresql', this.#watch, 'commit', () => client.query('commit'));
      return result;
    } catch (error) {
      await client.query('rollback').catch((rollbackError: Error) => {
        // A connection that cannot roll back leaves the pool rather than carry the transaction on.
        broken = rollbackError;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }
}

class PostgresTransaction implements Sql {
  readonly dialect = 'postgresql';
  readonly #client: pg.PoolClient;
  readonly #watch: StatementWatch;
  #savepoints = 0;

  constructor(client: pg.PoolClient, watch: StatementWatch) {
    this.#client = client;
    this.#watch = watch;
  }

  async rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await query(this.#watch, () => this.#client, sql, params)).rows as T[];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await query(this.#watch, () => this.#client, sql, params)).rowCount ?? 0;
  }

  async transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    const name = `s${this.#savepoints++}`;
    await this.#client.query(`savepoint ${name}`);
    try {
      const result = await work(this);
      await this.#client.query(`release savepoint ${name}`);
      return result;
    } catch (error) {
      await this.#client.query(`rollback to savepoint ${name}`);
      throw error;
    } finally {
      this.#savepoints--;
    }
  }
}

// ---------------------------------------------------------------- through the ORM

/**
 * The same statements through an EntityManager, in its transaction if it has one: for the store's
 * paths that share a transaction with the ORM's own calls (blob metadata, the database blob storage).
 */
export function ormSql(em: SqlEntityManager, dialect: Dialect): Sql {
  const convert = (error: Error) => {
    throw em.getDriver().convertException(error);
  };
  return {
    dialect,
    rows: <T>(sql: string, params: readonly unknown[] = []) =>
      em
        .getConnection()
        .execute<T[]>(sql, [...params], 'all', em.getTransactionContext())
        .catch(convert),
    run: async (sql, params = []) =>
      (
        await em
          .getConnection()
          .execute<{ affectedRows: number }>(sql, [...params], 'run', em.getTransactionContext())
          .catch(convert)
      ).affectedRows,
    transaction: (work) => em.transactional((tx) => work(ormSql(tx, dialect))),
  };
}
