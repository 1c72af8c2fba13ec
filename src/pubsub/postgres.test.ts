import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, eventually, freePort, type TestDatabase } from '../../test/harness.ts';
import { brokerContract, captureLog, recordAll } from '../../test/pubsub.ts';
import { CONNECT_TIMEOUT_MS } from './brokered.ts';
import { openPostgresPubSub, postgresChannel } from './postgres.ts';

const postgresUrl = process.env.PORTICO_TEST_POSTGRES_URL;

describe('postgresChannel', () => {
  it('makes a channel per topic from ASCII letters, digits and _, within 63 characters', () => {
    expect(postgresChannel('portico', 'session.revoked')).toBe('portico_session_revoked');
    expect(postgresChannel('portico', 'apiKey.revoked')).toBe('portico_apiKey_revoked');
    const long = postgresChannel('portico', `${'a'.repeat(80)}.changed`);
    expect(long).toHaveLength(63);
    expect(long).toMatch(/^portico_a+_[0-9a-f]{12}$/);
    expect(postgresChannel('portico', `${'a'.repeat(80)}.removed`)).not.toBe(long);
  });
});

describe.skipIf(!postgresUrl)('PostgreSQL pub/sub (LISTEN/NOTIFY)', () => {
  // LISTEN/NOTIFY do not cross databases: a database of its own isolates this file.
  let database: TestDatabase;
  let admin: pg.Client;
  beforeAll(async () => {
    database = await createTestDatabase('postgres', tmpdir());
    admin = new pg.Client({ connectionString: postgresUrl });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await database?.drop();
  });
  const databaseName = () => new URL(database.url).pathname.slice(1);

  const { open } = brokerContract({
    get url() {
      return database.url;
    },
    open: (name, log, options = {}) =>
      openPostgresPubSub({
        url: options.url ?? database.url,
        log,
        applicationName: name,
        heartbeat: options.heartbeat,
      }),
  });

  /** Backend pids of the LISTEN connections of instance `name`. */
  const listenBackends = async (name: string) =>
    (
      await admin.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = $1 and application_name = $2',
        [databaseName(), `${name}-listen`],
      )
    ).rows.map((row) => row.pid);

  it('reconnects after its LISTEN backend is terminated, reports a gap, and loses what was sent meanwhile', async () => {
    const a = await open('a');
    const b = await open('b');
    const aReceived = recordAll(a.pubsub);
    recordAll(b.pubsub);
    await Promise.all([a.pubsub.ready(), b.pubsub.ready()]);
    b.pubsub.publish('user.changed', { userId: 'before' });
    await eventually(() => aReceived.length === 1, 'the event before');
    const [backend] = await listenBackends('a');
    expect(backend).toBeTypeOf('number');

    // An independent listener, to know when the event sent while `a` is away was committed.
    const observer = new pg.Client({ connectionString: database.url });
    await observer.connect();
    const observed: string[] = [];
    observer.on('notification', ({ payload }) => observed.push(payload ?? ''));
    await observer.query('listen portico_user_changed');
    // New connections are refused until that event is sent: `a` surely does not listen then.
    await admin.query(`alter database ${databaseName()} with allow_connections false`);
    try {
      await admin.query('select pg_terminate_backend($1)', [backend]);
      await eventually(
        () => a.lines.some((line) => /reconnecting to PostgreSQL failed/.test(line.msg)),
        'a failed reconnection',
      );
      b.pubsub.publish('user.changed', { userId: 'while disconnected' });
      await eventually(
        () => observed.some((payload) => payload.includes('while disconnected')),
        'the NOTIFY',
      );
    } finally {
      await observer.end();
      await admin.query(`alter database ${databaseName()} with allow_connections true`);
    }
    await eventually(() => a.gaps.count === 1, 'the gap');
    expect(await listenBackends('a')).not.toContain(backend);

    b.pubsub.publish('user.changed', { userId: 'after' });
    await eventually(() => aReceived.length === 2, 'the event after');
    expect(aReceived.map(([, payload]) => payload)).toEqual([{ userId: 'before' }, { userId: 'after' }]);
    expect(a.lines.some((line) => line.level === 40 && /LISTEN connection failed/.test(line.msg))).toBe(true);
    expect(b.gaps.count).toBe(0);
  });

  it('fails to start with a clear error when PostgreSQL is not there', async () => {
    const url = new URL(database.url);
    url.port = String(await freePort());
    const { log } = captureLog();
    await expect(openPostgresPubSub({ url: url.toString(), log })).rejects.toThrow(
      /Cannot open the pub\/sub's LISTEN connection to the system database \(PostgreSQL\): .*ECONNREFUSED/,
    );
  });

  it('fails to start within the connect timeout when the server never answers', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = new URL(database.url);
      url.port = String((silent.address() as { port: number }).port);
      const { log } = captureLog();
      const started = Date.now();
      await expect(openPostgresPubSub({ url: url.toString(), log })).rejects.toThrow(
        /LISTEN connection .*timeout/i,
      );
      expect(Date.now() - started).toBeLessThan(CONNECT_TIMEOUT_MS + 2000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});
