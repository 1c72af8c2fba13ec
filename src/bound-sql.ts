import {
  type AnyEntity,
  type Dictionary,
  type EntityData,
  isRaw,
  JsonProperty,
  type LoggingOptions,
  type MikroORM,
  type QueryResult,
  type RawQueryFragment,
  raw,
  type Transaction,
  Utils,
} from '@mikro-orm/core';
import { PostgreSqlConnection, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { type AbstractSqlConnection, NativeQueryBuilder } from '@mikro-orm/sql';
import { CompiledQuery } from 'kysely';
import { type ConnectionClass, reportingOutages } from './outages.ts';
import { LockWaitingSqliteConnection, LockWaitingSqliteDriver } from './sqlite.ts';
import { statementSpan, traceStatement } from './telemetry/tracing.ts';

export type Dialect = 'sqlite' | 'postgresql';

export interface BoundStatement {
  /** The statement with placeholders only: `?` on SQLite, `$1, $2, …` on PostgreSQL. */
  sql: string;
  /** The values, in placeholder order, as the driver binds them. */
  parameters: unknown[];
}

/**
 * Turns MikroORM's statement (`?` for a value, `??` for an identifier, `\?` for a literal question
 * mark; an array value is a list, a raw fragment is spliced with its own values) into SQL text
 * and separately bound values: what `platform.formatQuery` does, but without writing one value
 * into the text.
 */
export function bindStatement(
  sql: string,
  params: readonly unknown[],
  dialect: Dialect,
  quoteIdentifier: (name: string) => string,
): BoundStatement {
  const parameters: unknown[] = [];
  const bind = (value: unknown): string => {
    if (isRaw(value)) return splice(value.sql, value.params);
    if (Array.isArray(value) && !isJson(value)) return value.map(bind).join(', ');
    parameters.push(isJson(value) ? JSON.stringify(value) : driverValue(value, dialect));
    return dialect === 'postgresql' ? `$${parameters.length}` : '?';
  };
  const splice = (text: string, values: readonly unknown[]): string => {
    let out = '';
    let next = 0;
    let from = 0;
    for (let at = text.indexOf('?'); at !== -1; at = text.indexOf('?', from)) {
      if (text[at - 1] === '\\') {
        out += `${text.slice(from, at - 1)}?`;
        from = at + 1;
      } else if (text[at + 1] === '?') {
        out += text.slice(from, at) + quoteIdentifier(String(values[next++]));
        from = at + 2;
      } else {
        out += text.slice(from, at) + bind(values[next++]);
        from = at + 1;
      }
    }
    return out + text.slice(from);
  };
  return { sql: splice(sql, params), parameters };
}

/** A value as the driver binds it, meaning what MikroORM's literal for it meant. */
export function driverValue(value: unknown, dialect: Dialect): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number') {
    // better-sqlite3 binds every number as REAL ('5.0' in a text column); a literal 5 was an INTEGER.
    return dialect === 'sqlite' && Number.isSafeInteger(value) ? BigInt(value) : value;
  }
  if (typeof value === 'boolean') return dialect === 'sqlite' ? Number(value) : value;
  if (typeof value === 'bigint') return dialect === 'sqlite' ? value : value.toString();
  // Dates are stored in UTC (`forceUtcTimezone`): epoch milliseconds on SQLite, ISO text on PostgreSQL.
  if (value instanceof Date) return dialect === 'sqlite' ? BigInt(value.getTime()) : value.toISOString();
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return String(value);
}

/** Objects, and values MikroORM tagged as JSON, are bound as JSON text. */
const isJson = (value: unknown) =>
  Utils.isPlainObject(value) || (value as { [JsonProperty]?: unknown } | null)?.[JsonProperty] === true;

/** MikroORM keeps abort options in the logger context; they are the query's, not the log's. */
function splitAbortOptions(loggerContext: LoggingOptions | undefined) {
  const { signal, inflightQueryAbortStrategy, ...context } = (loggerContext ?? {}) as LoggingOptions & {
    signal?: AbortSignal;
    inflightQueryAbortStrategy?: string;
  };
  const abort =
    signal === undefined && inflightQueryAbortStrategy === undefined
      ? undefined
      : { signal, inflightQueryAbortStrategy };
  return { abort: abort as Parameters<Client['executeQuery']>[1], context };
}

/** MikroORM's Kysely (its own copy of the package, so its own types). */
type Client = ReturnType<AbstractSqlConnection['getClient']>;

/**
 * A connection that sends every value as a bound parameter. MikroORM 7 writes values into the
 * statement's text (`platform.formatQuery`) and sends it with none: a quoting bug then changes
 * the statement, and a U+0000 cuts it short on PostgreSQL's wire protocol, breaking the pooled
 * connection (docs/security.md: "Every SQL value is a bound parameter").
 */
function bindingValues<Base extends ConnectionClass>(Base: Base, dialect: Dialect) {
  abstract class BoundConnection extends Base {
    /** Observes each statement's seconds (`timeStatements`); unset, statements are not timed. */
    statementSeconds: StatementTimer | undefined;

    #bound(query: string | NativeQueryBuilder | RawQueryFragment, params: readonly unknown[] | Dictionary) {
      let statement = query instanceof NativeQueryBuilder ? query.toRaw() : query;
      // Named parameters (`:name`) become positional ones through `raw()`, as MikroORM does.
      if (typeof statement === 'string' && !Array.isArray(params)) statement = raw(statement, params);
      const [sql, values] = isRaw(statement)
        ? [statement.sql, statement.params]
        : [statement as string, params as readonly unknown[]];
      return bindStatement(this.config.get('onQuery')(sql, values), values, dialect, (name) =>
        this.platform.quoteIdentifier(name),
      );
    }

    // Every statement `execute` sends passes here: timed, and a span of the request that runs it when traced.
    protected override async executeQuery<T>(
      query: string,
      run: () => Promise<T>,
      context?: Parameters<AbstractSqlConnection['executeQuery']>[2],
    ): Promise<T> {
      const started = performance.now();
      try {
        return await traceStatement(dialect, query, () => super.executeQuery(query, run, context));
      } finally {
        this.statementSeconds?.observe((performance.now() - started) / 1000);
      }
    }

    override async execute<
      T extends QueryResult | EntityData<AnyEntity> | EntityData<AnyEntity>[] = EntityData<AnyEntity>[],
    >(
      query: string | NativeQueryBuilder | RawQueryFragment,
      params: readonly unknown[] | Dictionary = [],
      method: 'all' | 'get' | 'run' = 'all',
      ctx?: Transaction,
      loggerContext?: LoggingOptions,
    ): Promise<T> {
      await this.ensureConnection();
      const { sql, parameters } = this.#bound(query, params);
      const { abort, context } = splitAbortOptions(loggerContext);
      const client: Client = ctx ?? this.getClient();
      return this.executeQuery(
        sql,
        async () =>
          this.transformRawResult<T>(
            await client.executeQuery(CompiledQuery.raw(sql, parameters), abort),
            method,
          ),
        { ...context, query: sql, params: parameters },
      );
    }

    override async *stream<T extends EntityData<AnyEntity>>(
      query: string | NativeQueryBuilder | RawQueryFragment,
      params: readonly unknown[] | Dictionary = [],
      ctx?: Parameters<AbstractSqlConnection['stream']>[2],
      loggerContext?: LoggingOptions,
      chunkSize = 100,
    ): AsyncIterableIterator<T> {
      await this.ensureConnection();
      const { sql, parameters } = this.#bound(query, params);
      const { abort, context } = splitAbortOptions(loggerContext);
      // A select node, as MikroORM builds it: the SQLite driver streams only those.
      const compiled = { ...CompiledQuery.raw(sql, parameters), query: { kind: 'SelectQueryNode' } };
      const client: Client = ctx ?? this.getClient();
      const endSpan = statementSpan(dialect, sql);
      // A stream is timed until it is read to its end.
      const started = performance.now();
      const rows = client
        .getExecutor()
        .stream(
          compiled as Parameters<Client['executeQuery']>[0] & CompiledQuery,
          chunkSize,
          abort?.signal ? { signal: abort.signal } : undefined,
        );
      try {
        for await (const chunk of rows) yield* this.transformRawResult<T[]>(chunk, 'all');
        this.logQuery(sql, { ...context, query: sql, params: parameters });
      } catch (error) {
        this.logQuery(sql, { ...context, query: sql, params: parameters, level: 'error' });
        endSpan?.(error);
        throw error;
      } finally {
        // Also when the reader stops early.
        endSpan?.();
        this.statementSeconds?.observe((performance.now() - started) / 1000);
      }
    }
  }
  return BoundConnection;
}

/** Where a connection reports how long each statement took (a histogram's child). */
export interface StatementTimer {
  observe(seconds: number): void;
}

/** Times every statement of the database's connection from now on. */
export function timeStatements(orm: MikroORM, timer: StatementTimer): void {
  (orm.em.getConnection() as unknown as { statementSeconds?: StatementTimer }).statementSeconds = timer;
}

/** SQLite through better-sqlite3 with asynchronous lock waits (src/sqlite.ts), every value bound, outages reported. */
export class BoundSqliteDriver extends LockWaitingSqliteDriver {
  protected override readonly connection = new (bindingValues(
    reportingOutages(LockWaitingSqliteConnection),
    'sqlite',
  ))(this.config);
}

/** PostgreSQL through pg, every value bound (the extended query protocol), outages reported. */
export class BoundPostgreSqlDriver extends PostgreSqlDriver {
  protected override readonly connection = new (bindingValues(
    reportingOutages(PostgreSqlConnection),
    'postgresql',
  ))(this.config);
}
