import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireLeaseDocument,
  ApiKeysDocument,
  ApproveDeviceDocument,
  CreateApiKeyDocument,
  DocumentChangedDocument,
  DocumentDocument,
  LogInDocument,
  LogOutDocument,
  PutDocumentDocument,
  ReconnectStoreBackendDocument,
  RevokeApiKeyDocument,
  SignUpDocument,
  StoreBackendDocument,
  SwitchStoreBackendDocument,
} from '../client/index.ts';
import { obtainKey } from '../src/store/remote/key.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  freePort,
  type SseEvent,
  startGateway,
  startGatewayWithAdmin,
  storeKey,
  subscribeOverSse,
  type TestClient,
  type TestGateway,
} from './harness.ts';
import { contend, violations } from './leases.ts';
import { expectRefusal } from './security/answers.ts';

/** The same declarations on the data server and its edges (a difference fails the start). */
const CONFIG = {
  signup: 'open',
  rateLimits: { signUps: 100 },
  leases: { maxWaitSeconds: 5 },
  collections: {
    notes: { indexes: { bySlug: { fields: ['slug'], unique: true } } },
    diary: { read: 'owner', write: 'owner' },
  },
};
const PASSWORD = 'a long enough passphrase';

/** An edge of `dataServer`: its own identity (a SQLite file in its data folder), the store over the protocol. */
const startEdge = (
  dataServer: TestGateway,
  key: string,
  env: Record<string, string> = {},
  config: Record<string, unknown> = CONFIG,
) =>
  startGateway({
    config,
    databaseUrl: `portico+${dataServer.url}`,
    env: { PORTICO_REMOTE_API_KEY: key, ...env },
  });

const put = (
  client: TestClient,
  id: string,
  data: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) => client.gql(PutDocumentDocument, { collection: 'notes', id, data, ...extra });

describe.each(backends)('two edges sharing a data server on %s', (backend) => {
  let dataServer: TestGateway;
  let first: TestGateway;
  let second: TestGateway;
  let adminOfFirst: TestClient;
  let adminOfSecond: TestClient;

  beforeAll(async () => {
    dataServer = await startGateway({ backend, config: CONFIG });
    const key = await storeKey(dataServer);
    first = await startEdge(dataServer, key);
    second = await startEdge(dataServer, key);
    adminOfFirst = await bootstrapAdmin(first);
    adminOfSecond = await bootstrapAdmin(second);
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await dataServer?.close();
  });

  it('says the store is remote, with no key in the URL', async () => {
    const { data } = await adminOfFirst.gql(StoreBackendDocument);
    expect(data?.storeBackend).toMatchObject({
      kind: 'REMOTE',
      url: `portico+${dataServer.url}`,
      status: 'READY',
      source: 'ENVIRONMENT',
    });
  });

  it('holds versions and unique indexes across them', async () => {
    const created = await put(adminOfFirst, 'shared', { slug: 'shared' });
    expect(created.errors).toBeUndefined();
    const replaced = await put(adminOfSecond, 'shared', { slug: 'shared', n: 2 }, { expectedVersion: 1 });
    expect(replaced.data?.putDocument.version).toBe(2);
    const stale = await put(adminOfFirst, 'shared', { slug: 'shared', n: 3 }, { expectedVersion: 1 });
    expectRefusal(stale, 'CONFLICT');
    expect(stale.errors?.[0]?.extensions?.currentVersion).toBe(2);

    // Twenty replacements of one document at once, through both edges, fare as on the data server
    // itself: on SQLite, whose writes take turns, each lands; PostgreSQL may refuse some with CONFLICT.
    const replacements = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        put(i % 2 ? adminOfFirst : adminOfSecond, 'hot', { slug: 'hot', i }),
      ),
    );
    const landed = replacements.filter((result) => !result.errors);
    if (backend === 'sqlite') expect(landed).toHaveLength(20);
    for (const result of replacements.filter((answer) => answer.errors)) expectRefusal(result, 'CONFLICT');
    expect(new Set(landed.map((result) => result.data?.putDocument.version)).size).toBe(landed.length);

    // Twenty writers, half on each edge, race for one unique slug: exactly one gets it.
    const racers = Array.from({ length: 20 }, (_, i) =>
      put(i % 2 ? adminOfFirst : adminOfSecond, `racer-${i}`, { slug: 'contested' }),
    );
    const results = await Promise.all(racers);
    expect(results.filter((result) => !result.errors)).toHaveLength(1);
    for (const result of results.filter((answer) => answer.errors)) expectRefusal(result, 'CONFLICT');
  });

  it('never grants a lease to holders on both at once, and fences the one that lost it', async () => {
    const contenders: TestClient[] = [];
    for (const edge of [first, second]) {
      for (let i = 0; i < 10; i++) {
        const client = edge.client();
        expect(
          (await client.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
        ).toBeUndefined();
        contenders.push(client);
      }
    }
    const grants = await contend(contenders, ['a', 'b', 'c'], 6000, async (client, key) => {
      const result = await client.gql(AcquireLeaseDocument, { key, ttlSeconds: 1, waitSeconds: 2 });
      expect(result.errors).toBeUndefined();
      return result.data!.acquireLease;
    });
    expect(grants.length).toBeGreaterThan(30);
    expect(violations(grants)).toEqual([]);

    // The first edge's holder lets its lease run out; the second's takes it; the first's token is stale.
    const lost = await adminOfFirst.gql(AcquireLeaseDocument, { key: 'fenced', ttlSeconds: 1 });
    const oldToken = lost.data!.acquireLease!.token;
    const taken = await adminOfSecond.gql(AcquireLeaseDocument, {
      key: 'fenced',
      ttlSeconds: 10,
      waitSeconds: 3,
    });
    expect(taken.data?.acquireLease?.token).toBeGreaterThan(oldToken);
    const fenced = await put(
      adminOfFirst,
      'fenced',
      { slug: 'f' },
      { fence: { lease: 'fenced', token: oldToken } },
    );
    expectRefusal(fenced, 'FENCE_REJECTED');
    const current = { lease: 'fenced', token: taken.data!.acquireLease!.token };
    expect((await put(adminOfSecond, 'fenced', { slug: 'f' }, { fence: current })).errors).toBeUndefined();
  }, 30_000);

  it("releases a gateway's leases when its session ends, waking a waiter on the other", async () => {
    const holder = first.client();
    expect(
      (await holder.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
    const held = await holder.gql(AcquireLeaseDocument, { key: 'session-bound', ttlSeconds: 60 });
    expect(held.data?.acquireLease).not.toBeNull();
    const startedWaiting = Date.now();
    const waiting = adminOfSecond.gql(AcquireLeaseDocument, {
      key: 'session-bound',
      ttlSeconds: 5,
      waitSeconds: 5,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await holder.gql(LogOutDocument);
    const granted = await waiting;
    expect(granted.data?.acquireLease?.token).toBeGreaterThan(held.data!.acquireLease!.token);
    // Woken by the release, not by the lease running out a minute later.
    expect(Date.now() - startedWaiting).toBeLessThan(4000);
  });

  it('reports changes made through the other edge to documentChanged', async () => {
    const view = await subscribeOverSse(
      adminOfSecond,
      DocumentChangedDocument,
      { collection: 'notes' },
      { until: 2 },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const made = await put(adminOfFirst, 'announced', { slug: 'announced' });
    expect(made.errors).toBeUndefined();
    await put(adminOfFirst, 'announced', { slug: 'announced', again: true });
    const kinds = (events: SseEvent[]) =>
      events
        .filter((event) => event.event === 'next')
        .map(
          (event) =>
            (event.data as { data: { documentChanged: { kind: string; id: string } } }).data.documentChanged,
        )
        .map((change) => `${change.kind} ${change.id}`);
    expect(kinds(await view.done)).toEqual([
      `CREATED ${made.data!.putDocument.id}`,
      `UPDATED ${made.data!.putDocument.id}`,
    ]);
  });

  it("keeps each gateway's owners apart: same-named users are different people", async () => {
    const signUp = async (edge: TestGateway) => {
      const client = edge.client();
      const result = await client.gql(SignUpDocument, {
        input: { email: 'carol@example.com', password: PASSWORD },
      });
      expect(result.errors).toBeUndefined();
      return client;
    };
    const carolOfFirst = await signUp(first);
    const carolOfSecond = await signUp(second);
    // Owner-only collections take no id on creation.
    const entry = await carolOfFirst.gql(PutDocumentDocument, {
      collection: 'diary',
      data: { text: 'private' },
    });
    expect(entry.errors).toBeUndefined();
    const dear = entry.data!.putDocument.id;
    expect(
      (await carolOfFirst.gql(DocumentDocument, { collection: 'diary', id: dear })).data?.document,
    ).not.toBeNull();
    // The other gateway's Carol cannot read or overwrite it.
    expect(
      (await carolOfSecond.gql(DocumentDocument, { collection: 'diary', id: dear })).data?.document,
    ).toBeNull();
    const overwrite = await carolOfSecond.gql(PutDocumentDocument, {
      collection: 'diary',
      id: dear,
      data: { text: 'mine' },
    });
    expect(overwrite.errors).toBeDefined();
    expect(codeOf(overwrite)).not.toBe('INTERNAL_SERVER_ERROR');
    expect(
      (await carolOfFirst.gql(DocumentDocument, { collection: 'diary', id: dear })).data?.document?.data,
    ).toEqual({
      text: 'private',
    });
  });
});

describe('the protocol refuses what it must', () => {
  let dataServer: TestGateway;
  let key: string;
  let admin: TestClient;

  beforeAll(async () => {
    dataServer = await startGateway({ config: CONFIG });
    key = await storeKey(dataServer);
    admin = dataServer.client();
    expect(
      (await admin.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
  });
  afterAll(() => dataServer?.close());

  const call = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(new URL(`/store/v1${path}`, dataServer.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
  const withKey = (secret: string) => ({
    authorization: `Bearer ${secret}`,
    'x-portico-gateway': 'a'.repeat(32),
  });

  it('answers a key with store:serve, and refuses no key, a cookie, or a key without the scope', async () => {
    const get = JSON.stringify({ collection: 'notes', id: 'x' });
    expect((await call('/documents/get', get, withKey(key))).status).toBe(200);
    expect((await call('/documents/get', get)).status).toBe(401);
    expect((await call('/documents/get', get, withKey('pk_nonsense'))).status).toBe(401);
    expect((await call('/documents/get', get, { cookie: admin.cookieHeader })).status).toBe(401);
    const narrow = await admin.gql(CreateApiKeyDocument, { name: 'narrow', scopes: ['leases'] });
    const refused = await call('/documents/get', get, withKey(narrow.data!.createApiKey.secret));
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ code: 'FORBIDDEN' });
    const events = await fetch(new URL('/store/v1/events', dataServer.url));
    expect(events.status).toBe(401);
  });

  it('answers bad calls with the contract codes, never a 500', async () => {
    const cases: [string, string, number, string][] = [
      ['/documents/get', 'not json', 400, 'BAD_USER_INPUT'],
      ['/documents/get', JSON.stringify({ collection: 'notes', id: 7 }), 400, 'BAD_USER_INPUT'],
      ['/documents/get', JSON.stringify({ collection: 'notes', id: 'nul\u0000' }), 400, 'BAD_USER_INPUT'],
      ['/documents/get', JSON.stringify({ collection: 'notes', id: 'x'.repeat(600) }), 400, 'BAD_USER_INPUT'],
      ['/documents/nothing', '{}', 404, 'NOT_FOUND'],
      [
        '/leases/acquire',
        JSON.stringify({ key: 'k', holder: 'h'.repeat(48), ttlMs: 1000 }),
        400,
        'BAD_USER_INPUT',
      ],
      [
        '/documents/write',
        JSON.stringify({
          collection: 'ghosts',
          id: 'a',
          ownerOfNew: null,
          text: '{}',
          expectedVersion: null,
          fence: null,
        }),
        400,
        'BAD_USER_INPUT',
      ],
      [
        '/documents/write',
        JSON.stringify({
          collection: 'notes',
          id: 'a',
          ownerOfNew: null,
          text: '[1]',
          expectedVersion: null,
          fence: null,
        }),
        400,
        'BAD_USER_INPUT',
      ],
      [
        '/documents/query',
        JSON.stringify({
          collection: 'notes',
          index: 'byNothing',
          range: null,
          ownerId: null,
          order: 'ASC',
          first: 5,
          after: null,
        }),
        400,
        'INDEX_NOT_DECLARED',
      ],
      ['/leases/acquire', JSON.stringify({ key: 'k', holder: 'h', ttlMs: -1 }), 400, 'BAD_USER_INPUT'],
      [
        '/blobs/create',
        JSON.stringify({ blob: {}, staged: { key: '../x' }, fence: null }),
        400,
        'BAD_USER_INPUT',
      ],
      [
        '/documents/get',
        `{"collection":"notes","id":"${'x'.repeat(5 * 1024 * 1024)}"}`,
        413,
        'PAYLOAD_TOO_LARGE',
      ],
    ];
    for (const [path, body, status, code] of cases) {
      const response = await call(path, body, withKey(key));
      expect(response.status, `${path} ${body.slice(0, 80)}`).toBe(status);
      expect(await response.json()).toMatchObject({ code });
    }
    const traversal = await fetch(new URL('/store/v1/blobs/bytes/..%2f..%2fetc%2fpasswd', dataServer.url), {
      headers: withKey(key),
    });
    expect(traversal.status).toBe(404);
    expect(dataServer.logs.filter((line) => line.level >= 50)).toEqual([]);
  });
});

describe('an edge starting', () => {
  const opened: TestGateway[] = [];
  let configHome: string;

  beforeAll(async () => {
    configHome = await mkdtemp(join(tmpdir(), 'portico-config-'));
  });
  afterEach(async () => {
    for (const gateway of opened.splice(0).reverse()) await gateway.close();
  });
  afterAll(() => rm(configHome, { recursive: true, force: true }));

  const track = async (started: Promise<TestGateway>) => {
    const gateway = await started;
    opened.push(gateway);
    return gateway;
  };

  it('without a key and without a terminal stops, saying which key to provide', async () => {
    const dataServer = await track(startGateway({ config: CONFIG }));
    const empty = join(configHome, 'empty');
    await expect(startEdge(dataServer, '', { XDG_CONFIG_HOME: empty })).rejects.toThrow(
      /PORTICO_REMOTE_API_KEY.*portico login.*terminal/s,
    );
  });

  it('uses the key `portico login` saved for the data server', async () => {
    const dataServer = await track(startGateway({ config: CONFIG }));
    const key = await storeKey(dataServer);
    const home = join(configHome, 'saved');
    await mkdir(join(home, 'portico'), { recursive: true });
    await writeFile(
      join(home, 'portico', 'credentials.json'),
      JSON.stringify({
        gateways: {
          [new URL(dataServer.url).origin]: { apiKey: key, grantedScope: 'store:serve', savedAt: '' },
        },
      }),
    );
    const previous = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = home;
    try {
      const edge = await track(startEdge(dataServer, ''));
      const admin = await bootstrapAdmin(edge);
      expect((await put(admin, 'via-saved-key', { slug: 'saved' })).errors).toBeUndefined();
    } finally {
      if (previous === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = previous;
    }
  });

  it('on a terminal, signs in with the device flow against the data server and saves the key', async () => {
    // Its public URL is its real address: the device flow's links lead there.
    const { portico: dataServer, admin } = await startGatewayWithAdmin({ config: CONFIG });
    opened.push(dataServer);
    const file = join(configHome, 'device', 'credentials.json');
    const printed: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => {
      printed.push(String(chunk));
      const code = /the code ([A-Z0-9-]+)/.exec(String(chunk))?.[1];
      if (code) void admin.gql(ApproveDeviceDocument, { userCode: code });
      return true;
    }) as typeof process.stderr.write;
    try {
      const obtained = await obtainKey({
        server: dataServer.url,
        apiKey: undefined,
        authUrl: undefined,
        interactive: true,
        credentialsFile: file,
        log: pino({ level: 'silent' }),
      });
      expect(obtained.source).toBe('device flow');
      expect(printed.join('')).toContain('store:serve');
      const saved = JSON.parse(await readFile(file, 'utf8')) as {
        gateways: Record<string, { apiKey: string }>;
      };
      expect(saved.gateways[new URL(dataServer.url).origin]?.apiKey).toBe(obtained.key);
      // The key serves the store: an edge starts with it.
      const edge = await track(startEdge(dataServer, obtained.key));
      expect((await put(await bootstrapAdmin(edge), 'device', { slug: 'device' })).errors).toBeUndefined();
    } finally {
      process.stderr.write = write;
    }
  }, 30_000);

  it('stops naming every difference when the data server declares the collections otherwise', async () => {
    const dataServer = await track(startGateway({ config: CONFIG }));
    const key = await storeKey(dataServer);
    const differing = {
      ...CONFIG,
      collections: {
        notes: { indexes: { bySlug: { fields: ['slug'] }, byTitle: ['title'] } },
        diary: CONFIG.collections.diary,
        extra: {},
      },
    };
    const failure = startEdge(dataServer, key, {}, differing);
    await expect(failure).rejects.toThrow(
      /notes: index "bySlug" is not unique here and unique on the data server/,
    );
    await expect(failure).rejects.toThrow(/notes: index "byTitle" is not declared on the data server/);
    await expect(failure).rejects.toThrow(/collection "extra" is not declared on the data server/);
  });

  it('serves identity while the data server is away, and the store once it answers', async () => {
    const port = await freePort();
    const dataDir = await mkdtemp(join(tmpdir(), 'portico-data-server-'));
    // The data server's first run makes the key; then it goes away before the edge starts.
    let dataServer = await startGateway({ config: CONFIG, port, dataDir });
    const key = await storeKey(dataServer);
    await dataServer.stop();

    const edge = await track(startEdge(dataServer, key));
    const admin = await bootstrapAdmin(edge);
    expect((await admin.gql(StoreBackendDocument)).data?.storeBackend).toMatchObject({
      kind: 'REMOTE',
      status: 'UNAVAILABLE',
    });
    expectRefusal(await put(admin, 'later', { slug: 'later' }), 'SERVICE_UNAVAILABLE');
    const ready = await fetch(new URL('/ready', edge.url));
    expect(ready.status).toBe(503);
    expect(await ready.text()).toMatch(/store/i);
    expect(edge.logs.some((line) => /does not answer: starting without it/.test(line.msg))).toBe(true);

    dataServer = await startGateway({ config: CONFIG, port, dataDir, databaseUrl: dataServer.databaseUrl });
    opened.unshift({
      ...dataServer,
      close: async () => {
        await dataServer.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    });
    await expect
      .poll(
        async () => (await put(admin, 'later', { slug: 'later' })).errors?.[0]?.extensions?.code ?? 'OK',
        {
          timeout: 15_000,
          interval: 500,
        },
      )
      .toBe('OK');
    expect((await fetch(new URL('/ready', edge.url))).status).toBe(200);
  }, 30_000);
});

describe('the data server stopped and started again under load', () => {
  it('loses no acknowledged write, and the edges recover by themselves', async () => {
    const port = await freePort();
    const dataDir = await mkdtemp(join(tmpdir(), 'portico-data-server-'));
    let dataServer = await startGateway({ config: CONFIG, port, dataDir });
    const key = await storeKey(dataServer);
    const edges = [await startEdge(dataServer, key), await startEdge(dataServer, key)];
    try {
      const admins = await Promise.all(edges.map((edge) => bootstrapAdmin(edge)));
      const acknowledged: string[] = [];
      const codes = new Set<string>();
      let writing = true;
      const writers = admins.flatMap((admin, a) =>
        Array.from({ length: 4 }, async (_, w) => {
          for (let n = 0; writing; n++) {
            const id = `w${a}-${w}-${n}`;
            const result = await put(admin, id, { slug: id });
            if (result.errors) {
              codes.add(String(codeOf(result)));
              await new Promise((resolve) => setTimeout(resolve, 50));
            } else acknowledged.push(id);
          }
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await dataServer.stop();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      dataServer = await startGateway({ config: CONFIG, port, dataDir, databaseUrl: dataServer.databaseUrl });
      const before = acknowledged.length;
      await expect
        .poll(() => acknowledged.length, { timeout: 15_000, interval: 200 })
        .toBeGreaterThan(before + 20);
      writing = false;
      await Promise.all(writers);

      expect([...codes].filter((code) => code !== 'SERVICE_UNAVAILABLE')).toEqual([]);
      expect(codes.has('SERVICE_UNAVAILABLE')).toBe(true);
      for (const id of acknowledged) {
        const found = await admins[0]!.gql(DocumentDocument, { collection: 'notes', id });
        expect(found.data?.document?.id, id).toBe(id);
      }
    } finally {
      for (const edge of edges) await edge.close();
      await dataServer.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the edge's key revoked", () => {
  it('answers SERVICE_UNAVAILABLE and logs why, then works again with a new key on reconnect', async () => {
    const dataServer = await startGateway({ config: CONFIG });
    const key = await storeKey(dataServer);
    const home = await mkdtemp(join(tmpdir(), 'portico-config-'));
    const previous = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = home;
    const edge = await startEdge(dataServer, key);
    try {
      const admin = await bootstrapAdmin(edge);
      expect((await put(admin, 'before', { slug: 'before' })).errors).toBeUndefined();

      const owner = dataServer.client();
      await owner.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
      const keys = await owner.gql(ApiKeysDocument);
      const edgeKey = keys.data!.viewer!.apiKeys.find((apiKey) => apiKey.name === 'edge')!;
      expect((await owner.gql(RevokeApiKeyDocument, { id: edgeKey.id })).errors).toBeUndefined();

      expectRefusal(await put(admin, 'after', { slug: 'after' }), 'SERVICE_UNAVAILABLE');
      expect(edge.logs.some((line) => line.level >= 50 && /refuses this gateway's key/.test(line.msg))).toBe(
        true,
      );

      // `portico login` saved a new key: a reconnect obtains it (the refused one is passed over).
      const fresh = await owner.gql(CreateApiKeyDocument, { name: 'edge again', scopes: ['store:serve'] });
      await mkdir(join(home, 'portico'), { recursive: true });
      await writeFile(
        join(home, 'portico', 'credentials.json'),
        JSON.stringify({
          gateways: {
            [new URL(dataServer.url).origin]: {
              apiKey: fresh.data!.createApiKey.secret,
              grantedScope: 'store:serve',
              savedAt: '',
            },
          },
        }),
      );
      expect((await admin.gql(ReconnectStoreBackendDocument)).errors).toBeUndefined();
      expect((await put(admin, 'after', { slug: 'after' })).errors).toBeUndefined();
    } finally {
      if (previous === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = previous;
      await edge.close();
      await dataServer.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe.runIf(backends.includes('postgres'))('switching two instances to a data server', () => {
  it('moves the other instance within 5 s; a data server that cannot be opened changes nothing', async () => {
    const dataServer = await startGateway({ config: CONFIG });
    const key = await storeKey(dataServer);
    const env = { PORTICO_REMOTE_API_KEY: key };
    const first = await startGateway({ backend: 'postgres', config: CONFIG, env });
    const secondDir = await mkdtemp(join(tmpdir(), 'portico-second-'));
    const second = await startGateway({
      backend: 'postgres',
      config: CONFIG,
      env,
      databaseUrl: first.databaseUrl,
      dataDir: secondDir,
    });
    try {
      const admin = await bootstrapAdmin(first);
      const onSecond = second.client();
      await onSecond.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
      expect((await put(admin, 'local', { slug: 'local' })).errors).toBeUndefined();

      const unreachable = `portico+http://127.0.0.1:${await freePort()}`;
      expectRefusal(await admin.gql(SwitchStoreBackendDocument, { url: unreachable }), 'SERVICE_UNAVAILABLE');
      expect((await admin.gql(StoreBackendDocument)).data?.storeBackend).toMatchObject({ kind: 'POSTGRES' });

      const switched = await admin.gql(SwitchStoreBackendDocument, { url: `portico+${dataServer.url}` });
      expect(switched.data?.switchStoreBackend).toMatchObject({
        kind: 'REMOTE',
        status: 'READY',
        source: 'SWITCH',
      });
      await expect
        .poll(async () => (await onSecond.gql(StoreBackendDocument)).data?.storeBackend.kind, {
          timeout: 5000,
          interval: 100,
        })
        .toBe('REMOTE');
      // The data is the data server's now (nothing was copied), on both instances.
      expect(
        (await onSecond.gql(DocumentDocument, { collection: 'notes', id: 'local' })).data?.document,
      ).toBeNull();
      expect((await put(admin, 'remote', { slug: 'remote' })).errors).toBeUndefined();
      expect(
        (await onSecond.gql(DocumentDocument, { collection: 'notes', id: 'remote' })).data?.document?.data,
      ).toEqual({ slug: 'remote' });
    } finally {
      await second.stop();
      await first.close();
      await dataServer.close();
      await rm(secondDir, { recursive: true, force: true });
    }
  }, 30_000);
});
