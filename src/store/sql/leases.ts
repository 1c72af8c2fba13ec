import { PorticoError } from '../../errors.ts';
import { limitClause, type Sql } from '../../sql.ts';
import type { Fence, LeaseRecord } from '../backend.ts';

// Acquire, renew and release are single conditional statements on the database's clock.

const COLUMNS = 'key, holder, token, acquired_at, expires_at';

/**
 * The database's own clock in epoch milliseconds, stable within one statement, so that
 * every instance measures leases by one clock. (`statement_timestamp()`, not `now()`,
 * which would be frozen at the start of an enclosing transaction.)
 */
const nowSql = (db: Sql) =>
  db.dialect === 'postgresql'
    ? '(extract(epoch from statement_timestamp()) * 1000)::bigint'
    : "cast(unixepoch('subsec') * 1000 as integer)";

interface LeaseRow {
  key: string;
  holder: string;
  token: number | string;
  acquired_at: number | string;
  expires_at: number | string;
}

// PostgreSQL's driver returns bigint columns as strings.
const fromRow = (row: LeaseRow): LeaseRecord => ({
  key: row.key,
  holder: row.holder,
  token: Number(row.token),
  acquiredAt: Number(row.acquired_at),
  expiresAt: Number(row.expires_at),
});

/**
 * Grants the key to `holder` when it is free (never held, released or expired), in
 * one statement: the row's token grows by one with every grant. Null when held.
 */
export async function acquireLease(db: Sql, key: string, holder: string, ttlMs: number) {
  const now = nowSql(db);
  const [row] = await db.rows<LeaseRow>(
    `insert into leases (${COLUMNS}) values (?, ?, 1, ${now}, ${now} + ?)
     on conflict (key) do update set holder = excluded.holder, token = leases.token + 1,
       acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
     where leases.expires_at <= excluded.acquired_at
     returning ${COLUMNS}`,
    [key, holder, ttlMs],
  );
  return row ? fromRow(row) : null;
}

/** Extends the holder's unexpired lease to now + ttl; null when this grant is over. */
export async function renewLease(db: Sql, key: string, holder: string, token: number, ttlMs: number) {
  const now = nowSql(db);
  const [row] = await db.rows<LeaseRow>(
    `update leases set expires_at = ${now} + ? where key = ? and holder = ? and token = ? and expires_at > ${now}
     returning ${COLUMNS}`,
    [ttlMs, key, holder, token],
  );
  return row ? fromRow(row) : null;
}

/** Ends the holder's unexpired lease now; false when this grant was already over. */
export async function releaseLease(db: Sql, key: string, holder: string, token: number) {
  const now = nowSql(db);
  const rows = await db.rows<LeaseRow>(
    `update leases set expires_at = ${now} where key = ? and holder = ? and token = ? and expires_at > ${now}
     returning ${COLUMNS}`,
    [key, holder, token],
  );
  return rows.length === 1;
}

/** Ends every live lease of these holders (their credential ended); returns the keys freed. */
export async function releaseHeldBy(db: Sql, holders: readonly string[]): Promise<string[]> {
  if (holders.length === 0) return [];
  const now = nowSql(db);
  const rows = await db.rows<LeaseRow>(
    `update leases set expires_at = ${now} where holder in (${holders.map(() => '?').join(', ')}) and expires_at > ${now}
     returning ${COLUMNS}`,
    [...holders],
  );
  return rows.map((row) => row.key);
}

/** The holders of live leases, for the sweep of ended credentials. */
export async function liveHolders(db: Sql): Promise<string[]> {
  const rows = await db.rows<{ holder: string }>(
    `select distinct holder from leases where expires_at > ${nowSql(db)}`,
  );
  return rows.map((row) => row.holder);
}

/** The live lease on a key, with the database's time; null when the key is free. */
export async function findLease(db: Sql, key: string) {
  const now = nowSql(db);
  const [row] = await db.rows<LeaseRow & { now: number | string }>(
    `select ${COLUMNS}, ${now} as now from leases where key = ? and expires_at > ${now}`,
    [key],
  );
  return row ? { lease: fromRow(row), now: Number(row.now) } : null;
}

/** Up to `limit` live leases whose key starts with `prefix`, in key order, after the key `after`. */
export async function listLeases(
  db: Sql,
  { prefix, after, limit }: { prefix: string | null; after: string | undefined; limit: number },
) {
  const where = [`expires_at > ${nowSql(db)}`];
  const params: unknown[] = [];
  if (prefix) {
    // substr counts characters on both databases, as the key length limit does.
    where.push('substr(key, 1, ?) = ?');
    params.push([...prefix].length, prefix);
  }
  if (after !== undefined) {
    where.push('key > ?');
    params.push(after);
  }
  const rows = await db.rows<LeaseRow>(
    `select ${COLUMNS} from leases where ${where.join(' and ')} order by key ${limitClause(limit)}`,
    params,
  );
  return rows.map(fromRow);
}

/**
 * Lets a write through only while `fence.token` is the lease's latest granted token.
 * Call it inside the write's transaction, before writing: on PostgreSQL the row stays
 * share-locked until commit, so no newer grant can slip in between check and write;
 * SQLite has one writer at a time.
 */
export async function checkFence(db: Sql, fence: Fence) {
  const lock = db.dialect === 'postgresql' ? ' for share' : '';
  const [row] = await db.rows<{ token: number | string }>(`select token from leases where key = ?${lock}`, [
    fence.lease,
  ]);
  if (!row || Number(row.token) !== fence.token) {
    throw new PorticoError(
      'FENCE_REJECTED',
      `Token ${fence.token} is not the latest granted for lease "${fence.lease}": this write is fenced off.`,
      { lease: fence.lease, token: fence.token },
    );
  }
}
