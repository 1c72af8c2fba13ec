import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { builtinModules } from '../modules/index.ts';
import { openDatabases } from '../src/db.ts';
import { isDatabaseUnavailable } from '../src/errors.ts';
import { backends, createTestDatabase } from './harness.ts';

/** Far above a prompt close on a busy machine. */
const PROMPT_MS = 10_000;

describe.runIf(backends.includes('postgres'))('closing the PostgreSQL databases', () => {
  it('finishes the queries that are connecting, refuses later ones as an outage, and ends', async () => {
    const database = await createTestDatabase('postgres', tmpdir());
    const databases = await openDatabases({
      env: { databaseUrl: database.url, systemDatabaseUrl: database.url },
      modules: builtinModules,
      log: pino({ level: 'silent' }),
    });
    try {
      const connection = databases.system.em.fork().getConnection();
      // More at once than the pool keeps idle after the migration: most need a new connection,
      // still being made when the close begins (the race that left a connection out for ever).
      const queries = Array.from({ length: 10 }, () => connection.execute('select pg_sleep(0.05) as slept'));
      await new Promise((resolve) => setImmediate(resolve));
      const closed = databases.close().then(() => 'closed');
      expect(await Promise.race([closed, sleep(PROMPT_MS, 'still closing')])).toBe('closed');
      const settled = await Promise.allSettled(queries);
      expect(settled.map((query) => query.status)).toEqual(queries.map(() => 'fulfilled'));

      // After the close nothing reconnects: a late query is an outage (503), not a new pool.
      const late = await connection.execute('select 1').catch((error: unknown) => error);
      expect(isDatabaseUnavailable(late), String(late)).toBe(true);
    } finally {
      await database.drop();
    }
  });
});
