import type { LogContext, MikroORM } from '@mikro-orm/core';
import type { AbstractSqlConnection } from '@mikro-orm/sql';
import { isDatabaseUnavailable } from './errors.ts';
import type { Logger } from './logger.ts';

/**
 * Logs a database's outage once when it begins and once when it ends, however many statements
 * fail meanwhile: every request of an outage answers SERVICE_UNAVAILABLE, and none logs it
 * again (a refused database once wrote 642 log lines in 6 seconds).
 */
export class OutageLog {
  readonly #name: string;
  readonly #log: Logger;
  /** When the outage in progress was noticed (`performance.now()`); null while the database answers. */
  #since: number | null = null;

  constructor(name: string, log: Logger) {
    this.#name = name;
    this.#log = log;
  }

  /** A statement begun at `startedAt` (`performance.now()`) ended, failing with `error` or not. */
  settled(startedAt: number, error?: unknown): void {
    if (error !== undefined && isDatabaseUnavailable(error)) {
      if (this.#since !== null) return;
      this.#since = performance.now();
      const reason = reasonOf(error);
      this.#log.error({ reason }, `database ${this.#name} unavailable: ${reason}`);
      return;
    }
    // A statement sent before the outage was noticed may still succeed: only a later one shows recovery.
    if (this.#since === null || startedAt < this.#since) return;
    this.#since = null;
    this.#log.info(`database ${this.#name} available again`);
  }
}

/** The driver's own words for the outage, e.g. `database "x" is not currently accepting connections`. */
function reasonOf(error: unknown): string {
  for (let current = error, depth = 0; current && depth < 6; depth++) {
    const { message, code, cause } = current as { message?: unknown; code?: unknown; cause?: unknown };
    if (typeof message === 'string' && message) return message;
    if (typeof code === 'string' && !cause) return code;
    current = cause;
  }
  return String(error);
}

// biome-ignore lint/suspicious/noExplicitAny: TypeScript requires `any[]` of a mixin's base constructor.
export type ConnectionClass = abstract new (...args: any[]) => AbstractSqlConnection;

/** A connection that reports how every statement and transaction start ended to an outage log. */
export function reportingOutages<Base extends ConnectionClass>(Base: Base) {
  abstract class ReportingConnection extends Base {
    outages: OutageLog | undefined;

    async #watched<T>(run: () => Promise<T>): Promise<T> {
      const startedAt = performance.now();
      try {
        const result = await run();
        this.outages?.settled(startedAt);
        return result;
      } catch (error) {
        this.outages?.settled(startedAt, error);
        throw error;
      }
    }

    protected override executeQuery<T>(
      query: string,
      cb: () => Promise<T>,
      context?: LogContext,
    ): Promise<T> {
      return this.#watched(() => super.executeQuery(query, cb, context));
    }

    override begin(options?: Parameters<AbstractSqlConnection['begin']>[0]) {
      return this.#watched(() => super.begin(options));
    }
  }
  return ReportingConnection;
}

/**
 * Logs the outages of a database whose driver's connection reports them (src/bound-sql.ts),
 * named after the logger's `db` binding (system, store, or system+store).
 */
export function logOutages(orm: MikroORM, log: Logger): void {
  const connection = orm.em.getConnection() as unknown as { outages?: OutageLog };
  connection.outages = new OutageLog(String(log.bindings().db ?? 'database'), log);
}
