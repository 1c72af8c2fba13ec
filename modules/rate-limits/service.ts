import type { SqlEntityManager } from '@mikro-orm/sql';
import { dialectOf, runStatement, selectRows } from '../../src/index.ts';

type Db = SqlEntityManager;

/** The longest wait a growing delay reaches. */
const MAX_DELAY_MS = 15 * 60_000;
const FIRST_DELAY_MS = 30_000;
/**
 * How long an attempt reserved at or past the limit keeps others out while its check runs (a
 * remote login may take up to a minute); its outcome then sets the real delay or lifts it.
 */
const HOLD_MS = 2 * 60_000;

/** 30 s after the limit is reached, doubling with every further failure, at most 15 min. */
export const growingDelay = (failuresPastLimit: number) =>
  Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.max(0, failuresPastLimit));

/** An attempt counted before it ran; `retryAfterMs` when it was refused instead. */
export type Reservation =
  | { reserved: true; count: number; windowStartedAt: number }
  | { reserved: false; retryAfterMs: number };

// Dates are epoch milliseconds in SQLite (MikroORM's storage) and timestamptz in PostgreSQL.
const timeParam = (em: Db, ms: number) => (dialectOf(em) === 'postgresql' ? new Date(ms) : ms);
// A bound time inside an expression (CASE), where PostgreSQL cannot infer its type.
const timeSql = (em: Db) => (dialectOf(em) === 'postgresql' ? 'cast(? as timestamptz)' : '?');
// The columns a statement returns, times as epoch milliseconds on both dialects.
const columns = (em: Db) =>
  dialectOf(em) === 'postgresql'
    ? `count, cast(extract(epoch from window_started_at) * 1000 as bigint) as window_started_at,
       cast(extract(epoch from blocked_until) * 1000 as bigint) as blocked_until`
    : 'count, window_started_at, blocked_until';
// PostgreSQL's driver returns bigints as strings.
const millis = (value: number | string | null) => (value === null ? null : Number(value));

interface CounterRow {
  count: number | string;
  window_started_at: number | string;
  blocked_until: number | string | null;
}

async function readCounter(em: Db, key: string) {
  const [row] = await selectRows<CounterRow>(em, `select ${columns(em)} from rate_counters where key = ?`, [
    key,
  ]);
  return row;
}

const reserved = (row: CounterRow): Reservation => ({
  reserved: true,
  count: Number(row.count),
  windowStartedAt: millis(row.window_started_at)!,
});

/**
 * Counts an attempt against consecutive failures, before it runs, in one statement: refused
 * while the key is blocked. The attempt that reaches `limit` (and each one after a delay ran
 * out) blocks the key while it runs, so parallel attempts cannot pass the limit together.
 */
export async function reserveConsecutive(
  em: Db,
  key: string,
  limit: number,
  now: number,
): Promise<Reservation> {
  const hold = now + HOLD_MS;
  const [row] = await selectRows<CounterRow>(
    em,
    `insert into rate_counters (key, count, window_started_at, blocked_until) values (?, 1, ?, ?)
     on conflict (key) do update set count = rate_counters.count + 1,
       blocked_until = case when rate_counters.count + 1 >= ? then ${timeSql(em)} else null end
     where rate_counters.blocked_until is null or rate_counters.blocked_until <= ?
     returning ${columns(em)}`,
    [
      key,
      timeParam(em, now),
      limit <= 1 ? timeParam(em, hold) : null,
      limit,
      timeParam(em, hold),
      timeParam(em, now),
    ],
  );
  if (row) return reserved(row);
  const blockedUntil = millis((await readCounter(em, key))?.blocked_until ?? null) ?? now;
  return { reserved: false, retryAfterMs: blockedUntil - now };
}

/**
 * Counts an attempt against a limit per window, before it runs, in one statement: refused
 * once `limit` attempts are counted in the current window; a new window starts from one.
 */
export async function reserveInWindow(
  em: Db,
  key: string,
  limit: number,
  windowMs: number,
  now: number,
): Promise<Reservation> {
  const ended = timeParam(em, now - windowMs);
  const [row] = await selectRows<CounterRow>(
    em,
    `insert into rate_counters (key, count, window_started_at, blocked_until) values (?, 1, ?, null)
     on conflict (key) do update set
       count = case when rate_counters.window_started_at <= ? then 1 else rate_counters.count + 1 end,
       window_started_at = case when rate_counters.window_started_at <= ?
         then ${timeSql(em)} else rate_counters.window_started_at end,
       blocked_until = null
     where rate_counters.window_started_at <= ? or rate_counters.count < ?
     returning ${columns(em)}`,
    [key, timeParam(em, now), ended, ended, timeParam(em, now), ended, limit],
  );
  if (row) return reserved(row);
  const started = millis((await readCounter(em, key))?.window_started_at ?? null) ?? now;
  return { reserved: false, retryAfterMs: started + windowMs - now };
}

/**
 * Takes back a consecutive-failure reservation whose attempt was no failure (an error that is
 * not the client's guess); `held`: the attempt blocked the key while it ran, and lifts that.
 */
export const refundConsecutive = (em: Db, key: string, held: boolean) =>
  runStatement(
    em,
    `update rate_counters set count = count - 1${held ? ', blocked_until = null' : ''} where key = ? and count > 0`,
    [key],
  );

/** Takes back a reservation in the window it was counted in (a later window owes it nothing). */
export const refundInWindow = (em: Db, key: string, reservation: { windowStartedAt: number }) =>
  runStatement(
    em,
    'update rate_counters set count = count - 1 where key = ? and window_started_at = ? and count > 0',
    [key, timeParam(em, reservation.windowStartedAt)],
  );

/** After a failure at or past the limit: the key waits `until`. */
export const block = (em: Db, key: string, until: number) =>
  runStatement(em, 'update rate_counters set blocked_until = ? where key = ?', [timeParam(em, until), key]);

/** After a success: consecutive failures start over. */
export const reset = (em: Db, key: string) =>
  runStatement(em, 'delete from rate_counters where key = ?', [key]);
