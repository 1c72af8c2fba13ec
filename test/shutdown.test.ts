import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AcquireLeaseDocument, SignUpDocument } from '../client/index.ts';
import { builtinModules } from '../modules/index.ts';
import leases from '../modules/leases/index.ts';
import { openDatabases } from '../src/db.ts';
import { isDatabaseUnavailable } from '../src/errors.ts';
import { backends, bootstrapAdmin, createTestDatabase, eventually, startGateway } from './harness.ts';
import { errorLines } from './security/answers.ts';

/** Far below the grace and the lease wait below, far above a prompt stop on a busy machine. */
const PROMPT_MS = 10_000;
const WAIT_SECONDS = 20;

const HELD = { key: 'held', ttlSeconds: 60 };

describe.each(backends)('stopping a gateway on %s', (backend) => {
  it('answers a pending lease wait at once instead of holding the stop for the grace', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'portico-shutdown-'));
    const database = await createTestDatabase(backend, dataDir);
    const portico = await startGateway({
      backend,
      dataDir,
      databaseUrl: database.url,
      config: { signup: 'open', leases: { maxWaitSeconds: WAIT_SECONDS } },
    });
    let closing: Promise<void> | undefined;
    try {
      const holder = await bootstrapAdmin(portico);
      const waiter = portico.client();
      const signedUp = await waiter.gql(SignUpDocument, {
        input: { email: 'waiter@example.com', password: 'a long enough passphrase' },
      });
      expect(signedUp.errors).toBeUndefined();
      expect((await holder.gql(AcquireLeaseDocument, HELD)).data?.acquireLease?.token).toBe(1);

      const waiting = waiter.gql(AcquireLeaseDocument, { ...HELD, waitSeconds: WAIT_SECONDS });
      const { runtime } = portico.gateway;
      await eventually(() => runtime.instances.of(leases).isAwaited('held'), 'the lease wait');
      // A production-like grace, longer than the wait: only waking the waiter stops promptly.
      closing = portico.gateway.close(60_000);
      const stopped = closing.then(() => 'stopped');
      expect(await Promise.race([stopped, sleep(PROMPT_MS, 'still stopping')])).toBe('stopped');

      const answer = await waiting;
      expect(answer.status).toBe(200);
      expect(answer.errors).toBeUndefined();
      expect(answer.data).toEqual({ acquireLease: null });
      // Kept alive, the client's connection would hold the stop until the client dropped it.
      expect(answer.headers.get('connection')).toBe('close');
      expect(errorLines(portico.logs)).toEqual([]);
    } finally {
      await (closing ?? portico.gateway.close(0));
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

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
