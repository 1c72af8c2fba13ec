import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateApiKeyDocument,
  LogInDocument,
  SessionEventsDocument,
  UsersDocument,
} from '../../client/index.ts';
import { isDatabaseUnavailable } from '../../src/errors.ts';
import { OutageLog } from '../../src/outages.ts';
import {
  asServerAdmin,
  backends,
  bootstrapAdmin,
  connectWs,
  createTestDatabase,
  type LogLine,
  queryText,
  startGateway,
  type TestClient,
  type TestDatabase,
  type TestGateway,
  type WsConnection,
} from '../harness.ts';
import { expectNoServerError } from './answers.ts';

/** Log lines that say a database went away or came back, and every warning or error besides. */
const outageLines = (logs: LogLine[]) => logs.filter((line) => /^database .* unavailable/.test(line.msg));
const recoveryLines = (logs: LogLine[]) =>
  logs.filter((line) => /^database .* available again/.test(line.msg));
const noisyLines = (logs: LogLine[]) => logs.filter((line) => line.level >= 40);

describe.runIf(backends.includes('postgres'))('database outages on postgres', () => {
  let dataDir: string;
  let database: TestDatabase;
  let name: string;
  let portico: TestGateway;
  let admin: TestClient;
  /** An API key no request used yet: no cache knows it, so a handshake with it needs the database. */
  let apiKey: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portico-outage-'));
    database = await createTestDatabase('postgres', dataDir);
    name = new URL(database.url).pathname.slice(1);
    portico = await startGateway({ backend: 'postgres', databaseUrl: database.url, dataDir });
    admin = await bootstrapAdmin(portico);
    const ticket = await admin.gql(CreateApiKeyDocument, { name: 'unused', scopes: [] });
    apiKey = ticket.data!.createApiKey.secret;
  });
  afterAll(async () => {
    await portico?.close();
    await asServerAdmin(`alter database ${name} allow_connections true`).catch(() => {});
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  /**
   * The admin's WebSocket, connected before the outage: whether a handshake during it needs the
   * database depends on the session cache, and the handshake's own answer is checked below.
   */
  async function connectedWebSocket(): Promise<WsConnection> {
    const open = connectWs(portico.url, { client: admin });
    await new Promise<void>((resolve, reject) => {
      open.client.on('connected', () => resolve());
      void open.closed.then((close) => reject(new Error(`closed with ${close.code}`)));
    });
    return open;
  }

  /** Every way in: GraphQL as a user and anonymously, a route, readiness, SSE and WebSocket. */
  async function expectEveryPathUnavailable(open: WsConnection) {
    for (const answer of [
      await admin.gql(UsersDocument),
      await portico.client().gql(LogInDocument, { email: 'a@example.com', password: 'whatever it is' }),
    ]) {
      expectNoServerError(answer);
      expect(answer.status).toBe(503);
      expect(answer.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(JSON.stringify(answer)).not.toMatch(/5432|postgres|portico_test|ECONN/i);
    }

    const route = await admin.request('/blobs/0123456789abcdef0123456789abcdef');
    expect(route.status).toBe(503);
    expect(Number(route.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await route.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });

    const ready = await fetch(new URL('/ready', portico.url));
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ databases: { system: false, store: false } });

    const sse = await admin.request('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: queryText(SessionEventsDocument) }),
    });
    expect(sse.status).toBe(503);
    expect(Number(sse.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await sse.text()).toContain('SERVICE_UNAVAILABLE');

    // WebSocket: a subscription on an open connection fails with SERVICE_UNAVAILABLE, and the
    // handshake of a credential that cannot be checked now closes with "try again later" (1013).
    const subscribed = await new Promise<unknown>((resolve) => {
      open.client.subscribe(
        { query: queryText(SessionEventsDocument) },
        {
          next: resolve,
          error: resolve,
          complete: () => resolve(null),
        },
      );
    });
    expect(JSON.stringify(subscribed)).toContain('SERVICE_UNAVAILABLE');
    const unchecked = connectWs(portico.url, { apiKey });
    expect((await unchecked.closed).code).toBe(1013);
  }

  /**
   * Every path answers SERVICE_UNAVAILABLE, over and over, and the log says so once: once the
   * outage is logged (`expected` names it), many more requests add no line at all.
   */
  async function expectOutage(since: number, expected: RegExp, open: WsConnection) {
    await expectEveryPathUnavailable(open);
    await expect.poll(() => outageLines(portico.logs.slice(since)).length).toBe(1);
    expect(outageLines(portico.logs.slice(since))[0]!.msg).toMatch(expected);
    const logged = portico.logs.length;
    const many = await Promise.all(Array.from({ length: 40 }, () => admin.gql(UsersDocument)));
    for (const answer of many) expect(answer.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    await expectEveryPathUnavailable(open);
    await open.client.dispose();
    // Requests add nothing; the pub/sub's reconnect attempts run on their own timer (bounded below).
    expect(portico.logs.slice(logged).filter((line) => !line.msg.startsWith('pub/sub:'))).toEqual([]);
    const during = portico.logs.slice(since);
    // The database's outage, and its pub/sub connections' (LISTEN, NOTIFY, the first retry).
    expect(noisyLines(during).length, JSON.stringify(noisyLines(during))).toBeLessThanOrEqual(4);
    expect(during.filter((line) => line.msg === 'unexpected error')).toEqual([]);
  }

  it('answers SERVICE_UNAVAILABLE everywhere while the database refuses connections, logs it once, and recovers', async () => {
    expect((await admin.gql(UsersDocument)).status).toBe(200);
    const open = await connectedWebSocket();
    const since = portico.logs.length;
    await asServerAdmin(
      `alter database ${name} allow_connections false`,
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and pid <> pg_backend_pid()`,
    );
    await expectOutage(since, /unavailable: .*(not currently accepting connections|terminat)/, open);

    await asServerAdmin(`alter database ${name} allow_connections true`);
    await expect
      .poll(async () => (await fetch(new URL('/ready', portico.url))).status, { timeout: 15_000 })
      .toBe(200);
    const again = await admin.gql(UsersDocument);
    expect(again.status).toBe(200);
    expect(again.data?.users.edges.length).toBe(1);
    expect(recoveryLines(portico.logs.slice(since)).length).toBe(1);
    expect(outageLines(portico.logs.slice(since)).length).toBe(1);
  }, 60_000);

  it('answers SERVICE_UNAVAILABLE after the database is dropped under it, and logs that once', async () => {
    const open = await connectedWebSocket();
    const since = portico.logs.length;
    await asServerAdmin(`drop database ${name} with (force)`);
    await expectOutage(since, /unavailable: .*(does not exist|terminat)/, open);
  }, 60_000);
});

describe('what counts as an outage', () => {
  const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

  it('names outages precisely: codes of bugs stay bugs (negative control)', () => {
    const outages = [
      pgError('55000', 'database "x" is not currently accepting connections'),
      pgError('3D000', 'database "x" does not exist'),
      pgError('57P01', 'terminating connection due to administrator command'),
      pgError('55P03', 'canceling statement due to lock timeout'),
      pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'),
      new Error('Connection terminated unexpectedly'),
    ];
    for (const error of outages) expect(isDatabaseUnavailable(error), error.message).toBe(true);
    const bugs = [
      pgError('55000', 'cannot change sequence "x": it is not in the current session'),
      pgError('42P01', 'relation "x" does not exist'),
      pgError('42601', 'syntax error at or near "x"'),
      pgError('23505', 'duplicate key value violates unique constraint "x"'),
      new Error('Cannot read properties of undefined'),
    ];
    for (const error of bugs) expect(isDatabaseUnavailable(error), error.message).toBe(false);
  });

  it('logs an outage when it begins and once when a statement begun after it succeeds', () => {
    const lines: { level: string; msg: string }[] = [];
    const log = {
      error: (_: unknown, msg: string) => lines.push({ level: 'error', msg }),
      info: (msg: string) => lines.push({ level: 'info', msg }),
    } as unknown as ConstructorParameters<typeof OutageLog>[1];
    const outages = new OutageLog('store', log);
    const refused = pgError('55000', 'database "x" is not currently accepting connections');
    const early = performance.now();
    outages.settled(early);
    outages.settled(early, refused);
    outages.settled(early, refused);
    // Sent before the outage was noticed: its success says nothing about now.
    outages.settled(early);
    // Not an outage: a bug's error neither starts nor ends one.
    outages.settled(early, new Error('a bug'));
    expect(lines).toEqual([
      {
        level: 'error',
        msg: 'database store unavailable: database "x" is not currently accepting connections',
      },
    ]);
    const later = performance.now();
    outages.settled(later);
    outages.settled(performance.now());
    expect(lines.at(-1)).toEqual({ level: 'info', msg: 'database store available again' });
    expect(lines).toHaveLength(2);
  });
});
