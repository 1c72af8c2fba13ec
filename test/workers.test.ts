import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireLeaseDocument,
  DocumentChangedDocument,
  LogInDocument,
  LogOutDocument,
  PutDocumentDocument,
  RedeemTokenDocument,
  ReleaseLeaseDocument,
  SessionRevokedDocument,
  SignUpDocument,
  ViewerDocument,
} from '../client/index.ts';
import { ADMIN, collect, eventually, freePort, type Operation, queryText, TestClient } from './harness.ts';
import { contend, violations } from './leases.ts';
import { METRICS_TOKEN, Scrape } from './metrics.ts';
import { type PorticoServer, runPortico, startPortico } from './run-cli.ts';

/**
 * `portico start --workers 2` on SQLite, as an operator runs it: a primary and two worker
 * processes sharing the port and the database files, the pub/sub relayed by the primary. Which
 * worker answered a request is read from its log lines (LOG_LEVEL=debug logs each request, with
 * the id the request came with and the worker's number); the cluster hands each new connection to
 * the next worker, so a client pinned to one connection talks to one worker.
 */
const PASSWORD = 'a long enough passphrase';
const NOTES = { collection: 'notes' };

/** A `fetch` over one keep-alive connection of its own: every request goes to the same worker. */
function connectionFetch(): { fetch: typeof fetch; close(): void } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const fetcher = (input: string | URL | Request, init: RequestInit = {}) =>
    new Promise<Response>((resolve, reject) => {
      const headers = Object.fromEntries(new Headers(init.headers));
      const sent = request(
        new URL(input instanceof Request ? input.url : input),
        { method: init.method ?? 'GET', headers, agent },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const answered = new Headers();
            for (let i = 0; i < response.rawHeaders.length; i += 2)
              answered.append(response.rawHeaders[i]!, response.rawHeaders[i + 1]!);
            const body = chunks.length > 0 ? Buffer.concat(chunks) : null;
            resolve(new Response(body, { status: response.statusCode, headers: answered }));
          });
        },
      );
      sent.on('error', reject);
      sent.end(typeof init.body === 'string' ? init.body : undefined);
    });
  return { fetch: fetcher as typeof fetch, close: () => agent.destroy() };
}

describe('portico start --workers 2 on SQLite', () => {
  let dir: string;
  let server: PorticoServer;
  let admin: TestClient;
  const connections: { close(): void }[] = [];
  let serial = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-workers-'));
    await writeFile(
      join(dir, 'portico.config.json'),
      JSON.stringify({
        signup: 'open',
        rateLimits: { signUps: 1000 },
        leases: { maxWaitSeconds: 20 },
        collections: {
          notes: { indexes: { byTag: ['tag'] }, read: 'authenticated', write: 'authenticated' },
        },
      }),
    );
    server = await startPortico(
      dir,
      {
        PORTICO_DATA_DIR: dir,
        PORTICO_PUBLIC_URL: 'http://portico.test',
        PORTICO_METRICS_TOKEN: METRICS_TOKEN,
        LOG_LEVEL: 'debug',
      },
      ['--workers', '2'],
    );
    const token = server.logs.find((line) => line.bootstrap === true)?.msg.match(/token=([\w-]+)/)?.[1];
    admin = new TestClient(server.url);
    const redeemed = await admin.gql(RedeemTokenDocument, { token: token!, profile: ADMIN });
    expect(redeemed.errors).toBeUndefined();
  }, 90_000);
  afterAll(async () => {
    for (const connection of connections) connection.close();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const nextId = (label: string) => `${label}-${++serial}`;

  /** The number of the worker that handled the request sent with `requestId`. */
  async function workerOf(requestId: string): Promise<number> {
    const handled = () => server.logs.find((line) => line.requestId === requestId);
    await eventually(() => handled() !== undefined, `a log line of request ${requestId}`);
    return handled()!.worker as number;
  }

  /** Sends one operation with a request id of its own; its result and the worker that answered. */
  async function send<R, V>(client: TestClient, document: Operation, variables?: V) {
    const requestId = nextId('op');
    const result = await client.gql<R>(queryText(document), variables as Record<string, unknown>, {
      'x-request-id': requestId,
    });
    return { result, worker: await workerOf(requestId) };
  }

  /** A client on a connection of its own that worker `worker` serves, with `from`'s cookies. */
  async function clientOn(worker: number, from?: TestClient): Promise<TestClient> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const connection = connectionFetch();
      connections.push(connection);
      const client = new TestClient(server.url, connection.fetch);
      for (const [name, value] of from?.cookies ?? []) client.cookies.set(name, value);
      if ((await send(client, '{ __typename }')).worker === worker) return client;
      connection.close();
    }
    throw new Error(`no connection reached worker ${worker} in 10 tries`);
  }

  /** A subscription over SSE (a connection of its own) that worker `worker` serves. */
  async function streamOn(worker: number, client: TestClient, operation: Operation, variables = {}) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const requestId = nextId('stream');
      const sse = createSseClient({
        url: `${server.url}/graphql`,
        singleConnection: false,
        retryAttempts: 0,
        headers: () => ({ cookie: client.cookieHeader, 'x-request-id': requestId }),
      });
      const stream = collect(sse.iterate({ query: queryText(operation), variables }));
      if ((await workerOf(requestId)) === worker) {
        // Its listener on the pub/sub is registered once the subscription has started.
        await sleep(300);
        return stream;
      }
      stream.stop();
      sse.dispose();
    }
    throw new Error(`no stream reached worker ${worker} in 10 tries`);
  }

  async function newUser(on: TestClient) {
    const email = `user${++serial}@example.com`;
    const signedUp = await on.gql(SignUpDocument, { input: { email, password: PASSWORD } });
    expect(signedUp.errors).toBeUndefined();
    return { email, session: signedUp.data!.signUp.session };
  }

  it('serves requests from both workers, each on the port, each line of its log naming it', async () => {
    const workers = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const connection = connectionFetch();
      const answered = await send(new TestClient(server.url, connection.fetch), '{ __typename }');
      connection.close();
      expect(answered.result.data).toEqual({ __typename: 'Query' });
      workers.add(answered.worker);
    }
    expect([...workers].sort()).toEqual([1, 2]);
    const listening = server.logs.find((line) => line.msg.startsWith('Portico listening'));
    expect(listening).toMatchObject({ workers: 2, pubsub: 'ipc', url: server.url });
    expect(listening?.msg).toContain('IPC via the primary process');
    // Worker 1 brought the schema up to date and printed the link; worker 2 found both done.
    for (const once of ['updating database schema', 'No admin yet'])
      expect(server.logs.filter((line) => line.msg.startsWith(once)).map((line) => line.worker)).toEqual([1]);
  });

  it('answers GET /metrics on either worker with the counters of both', async () => {
    const counted = 'query CountedOnBothWorkers { __typename }';
    const onOne = await clientOn(1);
    for (let i = 0; i < 3; i++) expect((await send(onOne, counted)).worker).toBe(1);
    const onTwo = await clientOn(2);
    for (let i = 0; i < 2; i++) expect((await send(onTwo, counted)).worker).toBe(2);
    for (const [worker, client] of [
      [1, onOne],
      [2, onTwo],
    ] as const) {
      // On the connection that worker serves (a scrape logs nothing to tell it by).
      const response = await client.request('/metrics', {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      expect(response.status).toBe(200);
      expect((await send(client, '{ __typename }')).worker).toBe(worker);
      const scraped = new Scrape(await response.text());
      expect(
        scraped.value('portico_graphql_operations_total', { operation_name: 'CountedOnBothWorkers' }),
      ).toBe(5);
      // Up on both workers is 1, not 2.
      expect(scraped.value('portico_database_up', { database: 'system' })).toBe(1);
    }
  });

  it('refuses a session revoked through one worker on the other at once', async () => {
    const browser = new TestClient(server.url);
    const { email } = await newUser(browser);
    const onTwo = await clientOn(2, browser);
    // Worker 2 has the session in its cache now.
    const before = await send<{ viewer: { user: { email: string } | null } }, never>(onTwo, ViewerDocument);
    expect(before).toMatchObject({ worker: 2, result: { data: { viewer: { user: { email } } } } });
    const onOne = await clientOn(1, browser);
    const loggedOut = await send(onOne, LogOutDocument);
    expect(loggedOut.worker).toBe(1);
    const revokedAt = Date.now();
    let after = await send<{ viewer: { user: unknown } }, never>(onTwo, ViewerDocument);
    while (after.result.data?.viewer.user !== null && Date.now() - revokedAt < 1_000)
      after = await send(onTwo, ViewerDocument);
    expect(after).toMatchObject({ worker: 2, result: { data: { viewer: { user: null } } } });
  });

  it('ends a live stream on one worker when the session is revoked through the other', async () => {
    const browser = new TestClient(server.url);
    const user = await newUser(browser);
    const stream = await streamOn(2, browser, SessionRevokedDocument);
    const onOne = await clientOn(1, browser);
    const started = Date.now();
    expect((await send(onOne, LogOutDocument)).worker).toBe(1);
    const done = await stream.done;
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(done.results).toEqual([
      { data: { sessionRevoked: { sessionId: user.session.id, reason: 'LOGOUT', at: expect.any(String) } } },
    ]);
  });

  it('delivers a document written through one worker to a documentChanged subscriber on the other', async () => {
    const browser = new TestClient(server.url);
    await newUser(browser);
    const changes = await streamOn(2, browser, DocumentChangedDocument, NOTES);
    const onOne = await clientOn(1, browser);
    const put = await send(onOne, PutDocumentDocument, { ...NOTES, id: 'across', data: { tag: 'x' } });
    expect(put).toMatchObject({ worker: 1, result: { data: { putDocument: { id: 'across' } } } });
    await eventually(() => changes.results.length === 1, 'the change on worker 2', 2_000);
    expect(changes.results[0]).toEqual({
      data: {
        documentChanged: expect.objectContaining({
          kind: 'CREATED',
          id: 'across',
          document: expect.objectContaining({ data: { tag: 'x' } }),
        }),
      },
    });
    changes.stop();
  });

  it('wakes a lease waiter on one worker as soon as the lease is released through the other', async () => {
    const browser = new TestClient(server.url);
    await newUser(browser);
    const onOne = await clientOn(1, browser);
    const key = 'jobs/nightly';
    const held = await send<{ acquireLease: { token: number } }, unknown>(onOne, AcquireLeaseDocument, {
      key,
      ttlSeconds: 60,
    });
    expect(held.worker).toBe(1);
    const token = held.result.data!.acquireLease.token;
    const onTwo = await clientOn(2, browser);
    const waiting = send<{ acquireLease: { token: number } | null }, unknown>(onTwo, AcquireLeaseDocument, {
      key,
      ttlSeconds: 60,
      waitSeconds: 20,
    });
    await sleep(300);
    const released = Date.now();
    expect((await send(onOne, ReleaseLeaseDocument, { key, token })).worker).toBe(1);
    const granted = await waiting;
    expect(granted).toMatchObject({ worker: 2, result: { data: { acquireLease: { token: token + 1 } } } });
    // The release event woke it, not its next try at the grant's expiry (60 s away).
    expect(Date.now() - released).toBeLessThan(2_000);
  });

  it('never grants a lease to two holders at once across the workers: 40 contenders on 3 keys for 10 s', async () => {
    const contenders: TestClient[] = [];
    // One login at a time: 40 at once would count against the account's limit (docs/security.md).
    for (let i = 0; i < 40; i++) {
      const connection = connectionFetch();
      connections.push(connection);
      const client = new TestClient(server.url, connection.fetch);
      const loggedIn = await client.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
      expect(loggedIn.errors).toBeUndefined();
      contenders.push(client);
    }
    const grants = await contend(contenders, ['a', 'b', 'c'], 10_000, async (client, key) => {
      const result = await client.gql(
        AcquireLeaseDocument,
        { key, ttlSeconds: 1, waitSeconds: 2 },
        { 'x-request-id': nextId('acquire') },
      );
      expect(result.errors).toBeUndefined();
      return result.data!.acquireLease;
    });
    expect(grants.length).toBeGreaterThan(100);
    // Tokens grow strictly per key (fencing) and no grant overlaps the one before it (exclusion).
    expect(violations(grants)).toEqual([]);
    expect(grants.some((grant) => grant.ranOut)).toBe(true);
    const acquiresBy = (worker: number) =>
      new Set(
        server.logs
          .filter((line) => String(line.requestId).startsWith('acquire-') && line.worker === worker)
          .map((line) => line.requestId),
      ).size;
    expect(acquiresBy(1)).toBeGreaterThan(grants.length / 10);
    expect(acquiresBy(2)).toBeGreaterThan(grants.length / 10);
  }, 60_000);

  it('refuses the write of a holder whose lease another worker has granted since (fencing)', async () => {
    const onOne = await clientOn(1, admin);
    const key = 'fenced';
    const first = await send<{ acquireLease: { token: number } }, unknown>(onOne, AcquireLeaseDocument, {
      key,
      ttlSeconds: 1,
    });
    await sleep(1_100);
    const onTwo = await clientOn(2, admin);
    const second = await send<{ acquireLease: { token: number } }, unknown>(onTwo, AcquireLeaseDocument, {
      key,
      ttlSeconds: 60,
    });
    expect(second.result.data!.acquireLease.token).toBe(first.result.data!.acquireLease.token + 1);
    const write = (client: TestClient, token: number) =>
      send(client, PutDocumentDocument, {
        ...NOTES,
        id: 'fenced',
        data: { tag: 'f' },
        fence: { lease: key, token },
      });
    const stale = await write(onOne, first.result.data!.acquireLease.token);
    expect(stale).toMatchObject({
      worker: 1,
      result: { errors: [{ extensions: { code: 'FENCE_REJECTED' } }] },
    });
    const current = await write(onTwo, second.result.data!.acquireLease.token);
    expect(current).toMatchObject({ worker: 2, result: { data: { putDocument: { id: 'fenced' } } } });
  });

  it('replaces a killed worker, answers meanwhile, and waits longer each time its replacements die', async () => {
    const workerPids = () =>
      execFileSync('pgrep', ['-P', String(server.process.pid)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map(Number);
    const kill = async (pid: number) => {
      process.kill(pid, 'SIGKILL');
      const exited = () =>
        server.logs.find((line) => line.pid === pid && /exited \(SIGKILL\)/.test(line.msg));
      await eventually(() => exited() !== undefined, 'the primary to see the worker die');
      return exited()!;
    };
    const replaced = (number: number) =>
      server.logs.filter((line) => line.msg === `worker ${number} is serving again`).length;

    const before = workerPids();
    const first = await kill(before[0]!);
    const number = first.worker as number;
    expect(first.restartInMs).toBe(0);
    // The other worker answers everything while the replacement starts.
    let answered = 0;
    while (replaced(number) === 0) {
      const connection = connectionFetch();
      const { result } = await send(new TestClient(server.url, connection.fetch), '{ __typename }');
      connection.close();
      expect(result.data).toEqual({ __typename: 'Query' });
      answered++;
      await sleep(50);
    }
    expect(answered).toBeGreaterThan(0);
    // And the replacement serves its share.
    await clientOn(number);

    // It dies too, soon after it started: the next one comes a second later, not at once.
    const replacement = workerPids().find((pid) => !before.includes(pid));
    const second = await kill(replacement!);
    expect(second).toMatchObject({ worker: number, restartInMs: 1000 });
    expect(second.msg).toContain('starting another in 1000 ms');
    await eventually(() => replaced(number) === 2, 'the second replacement', 60_000);
  }, 120_000);

  it('stops every worker gracefully on SIGTERM and exits 0', async () => {
    expect(await server.stop()).toBe(0);
    expect(server.logs.some((line) => line.msg === 'shutting down: stopping the workers')).toBe(true);
    const finishing = server.logs.filter(
      (line) => line.msg === 'shutting down: finishing in-flight requests',
    );
    expect(finishing.map((line) => line.worker).sort()).toEqual([1, 2]);
  }, 60_000);
});

describe('portico start --workers, refused', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-workers-cli-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each(['--workers 0', '--workers=-1', '--workers two', '--workers 1.5'])(
    'start %s is a usage error (exit 2)',
    async (option) => {
      const run = await runPortico(['start', ...option.split(' ')], dir);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('--workers: expected an integer from 1 to 1024, or auto');
      expect(run.stdout).toBe('');
    },
  );

  it('refuses an unknown option of start (exit 2)', async () => {
    const run = await runPortico(['start', '--wokers', '2'], dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("Unknown option '--wokers'");
  });

  it('reports a bad PORTICO_WORKERS with the other configuration problems (exit 1)', async () => {
    const run = await runPortico(['start'], dir, { PORTICO_WORKERS: 'many', PORTICO_DATA_DIR: dir });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('PORTICO_WORKERS: expected an integer from 1 to 1024, or auto');
  });

  it('fails the start, exit 1, when the first worker cannot start; the reason is on standard error', async () => {
    const port = await freePort();
    const run = await runPortico(
      ['start', '--workers', '2'],
      dir,
      {
        PORT: String(port),
        PORTICO_DATA_DIR: dir,
        DATABASE_URL: 'postgres://portico@127.0.0.1:1/missing',
      },
      { timeoutMs: 60_000 },
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/127\.0\.0\.1:1|ECONNREFUSED/);
    expect(run.stdout).not.toContain('Portico listening');
  }, 70_000);
});
