import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LogOutDocument,
  PutDocumentDocument,
  SessionRevokedDocument,
  ViewerDocument,
} from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  collect,
  connectWs,
  createTestDatabase,
  queryText,
  redisUrl,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { METRICS_TOKEN, type Scrape, scrape } from '../../test/metrics.ts';
import { Outage } from '../../test/outage.ts';
import { toGlobalId } from '../ids.ts';
import { GatewayMetrics, MAX_OPERATION_NAME_LENGTH, MAX_OPERATION_NAMES } from './metrics.ts';

const CONFIG = {
  collections: { notes: { read: 'owner', write: 'owner' } },
};
const WITH_TOKEN = { PORTICO_METRICS_TOKEN: METRICS_TOKEN };

/** Scrapes until `check` holds (a gauge that follows a disconnect a moment later). */
async function scrapeUntil(url: string, check: (scraped: Scrape) => boolean, what: string): Promise<Scrape> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const scraped = await scrape(url);
    if (check(scraped)) return scraped;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The change of each series between two scrapes. */
const delta =
  (before: Scrape, after: Scrape) =>
  (name: string, labels: Record<string, string> = {}) =>
    after.value(name, labels) - before.value(name, labels);

describe('GatewayMetrics', () => {
  const labelsOf = async (metrics: GatewayMetrics) =>
    new Set((await metrics.operations.get()).values.map((sample) => String(sample.labels.operation_name)));

  it('keeps the first operation names, cut in length, and counts the rest under one label', async () => {
    const metrics = new GatewayMetrics();
    const long = `Op${'x'.repeat(200)}`;
    metrics.operation(long, 'query', 'ok', 0.001);
    for (let i = 0; i < MAX_OPERATION_NAMES + 50; i++) metrics.operation(`Op${i}`, 'query', 'ok', 0.001);
    metrics.operation(null, 'mutation', 'error', 0.001);
    metrics.operation('alice@example.com', 'unknown', 'error', 0.001);
    metrics.operation('Op0', 'query', 'ok', 0.001);
    const labels = await labelsOf(metrics);
    expect(labels.size).toBe(MAX_OPERATION_NAMES + 3);
    expect(labels).toContain(`${long.slice(0, MAX_OPERATION_NAME_LENGTH)}…`);
    expect(labels).toContain('Op0');
    // The long name took one of the places: Op0 to Op98 have the others.
    expect(labels).toContain(`Op${MAX_OPERATION_NAMES - 2}`);
    expect(labels).not.toContain(`Op${MAX_OPERATION_NAMES - 1}`);
    expect(labels).toContain('(other)');
    expect(labels).toContain('(anonymous)');
    expect(labels).toContain('(invalid)');
    const counts = (await metrics.operations.get()).values;
    expect(counts.find((sample) => sample.labels.operation_name === 'Op0')?.value).toBe(2);
    expect(counts.find((sample) => sample.labels.operation_name === '(other)')?.value).toBe(51);
  });

  it('counts a stream open until its consumer returns, though no event ever comes', async () => {
    const metrics = new GatewayMetrics();
    const silent: AsyncIterable<never> = {
      [Symbol.asyncIterator]: () => ({
        next: () => new Promise<never>(() => {}),
        return: async () => ({ done: true, value: undefined }),
      }),
    };
    const open = async () =>
      (await metrics.subscriptions.get()).values.find((sample) => sample.labels.transport === 'sse')?.value;
    const stream = metrics.countOpen(silent, 'sse');
    expect(await open()).toBe(1);
    void stream.next();
    await stream.return?.();
    expect(await open()).toBe(0);
    await stream.return?.();
    expect(await open()).toBe(0);
  });
});

describe('GET /metrics without PORTICO_METRICS_TOKEN', () => {
  it('is not there (404)', async () => {
    const portico = await startGateway({ listen: false });
    try {
      const response = await portico.client().request('/metrics', {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      expect(response.status).toBe(404);
    } finally {
      await portico.close();
    }
  });
});

describe.each(backends)('metrics on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  /** Ids and emails the tests used: no label may carry one. */
  const secrets = new Set<string>([ADMIN.email]);

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG, env: WITH_TOKEN });
    admin = await bootstrapAdmin(portico);
    const viewer = await admin.gql(ViewerDocument);
    const { user, session } = viewer.data!.viewer;
    for (const id of [user!.id, session!.id]) secrets.add(id);
  });
  afterAll(() => portico?.close());

  it('answers with the token only: 403 without it or with another, 405 for other methods', async () => {
    const metrics = new URL('/metrics', portico.url);
    const statusOf = async (init: RequestInit) => (await fetch(metrics, init)).status;
    expect(await statusOf({})).toBe(403);
    expect(await statusOf({ headers: { authorization: 'Bearer wrong-token-of-some-length' } })).toBe(403);
    expect(await statusOf({ headers: { authorization: `Bearer ${METRICS_TOKEN}x` } })).toBe(403);
    expect(await statusOf({ headers: { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}` } })).toBe(403);
    expect(await statusOf({ headers: { authorization: `Basic ${METRICS_TOKEN}` } })).toBe(403);
    expect(await statusOf({ method: 'POST', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).toBe(
      405,
    );

    const response = await fetch(metrics, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const scraped = await scrape(portico.url);
    // Node's own, next to the gateway's.
    expect(scraped.type('process_cpu_user_seconds_total')).toBe('COUNTER');
    expect(scraped.type('nodejs_heap_size_used_bytes')).toBe('GAUGE');
    expect(scraped.type('portico_graphql_operations_total')).toBe('COUNTER');
    expect(scraped.type('portico_graphql_operation_duration_seconds')).toBe('HISTOGRAM');
  });

  it('counts operations by name, type and outcome, and errors by contract code', async () => {
    const before = await scrape(portico.url);
    for (let i = 0; i < 3; i++) expect((await admin.gql(ViewerDocument)).errors).toBeUndefined();
    expect((await admin.gql('{ viewer { scopes } }')).errors).toBeUndefined();
    const put = await admin.gql(PutDocumentDocument, { collection: 'notes', data: { n: 1 } });
    secrets.add(put.data!.putDocument.id);
    // Refused by validation, by the parser, and by a resolver.
    expect((await admin.gql('query Broken { viewer { nope } }')).status).toBe(400);
    const unparsable = await admin.request('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query: 'query Unparsable {', operationName: 'Unparsable' }),
    });
    expect(unparsable.status).toBe(400);
    const refused = await admin.gql('mutation Refused { acquireLease(key: "k", ttlSeconds: 0) { token } }');
    expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    // A key that does not work makes the request anonymous.
    const stranger = await portico
      .client()
      .gql('mutation Stranger { acquireLease(key: "k", ttlSeconds: 10) { token } }', undefined, {
        authorization: 'Bearer pk_not-a-key',
      });
    expect(stranger.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(stranger.status).toBe(200);
    const after = await scrape(portico.url);
    const change = delta(before, after);

    const operation = (name: string, type: string, outcome: string) => ({
      operation_name: name,
      operation_type: type,
      outcome,
    });
    const counts: [Record<string, string>, number][] = [
      [operation('Viewer', 'query', 'ok'), 3],
      [operation('(anonymous)', 'query', 'ok'), 1],
      [operation('PutDocument', 'mutation', 'ok'), 1],
      [operation('Broken', 'query', 'error'), 1],
      [operation('Unparsable', 'unknown', 'error'), 1],
      [operation('Refused', 'mutation', 'error'), 1],
      [operation('Stranger', 'mutation', 'error'), 1],
    ];
    for (const [labels, count] of counts) {
      expect(change('portico_graphql_operations_total', labels), JSON.stringify(labels)).toBe(count);
      expect(change('portico_graphql_operation_duration_seconds', labels), JSON.stringify(labels)).toBe(
        count,
      );
    }
    expect(change('portico_graphql_operations_total')).toBe(9);
    expect(change('portico_graphql_errors_total', { code: 'BAD_USER_INPUT' })).toBe(3);
    expect(change('portico_graphql_errors_total', { code: 'UNAUTHENTICATED' })).toBe(1);
    expect(change('portico_graphql_errors_total')).toBe(4);
    expect(change('portico_http_requests_total', { method: 'POST', route: '/graphql', status: '200' })).toBe(
      7,
    );
    expect(change('portico_http_requests_total', { method: 'POST', route: '/graphql', status: '400' })).toBe(
      2,
    );
    expect(change('portico_http_request_duration_seconds', { method: 'POST', route: '/graphql' })).toBe(9);
    // The first scrape, seen by the second.
    expect(change('portico_http_requests_total', { method: 'GET', route: '/metrics', status: '200' })).toBe(
      1,
    );
    expect(change('portico_database_statement_duration_seconds')).toBeGreaterThan(0);
  });

  it('labels requests by route pattern: never a path, unknown paths and methods in one bucket each', async () => {
    const blobId = toGlobalId('Blob', randomBytes(16).toString('hex'));
    secrets.add(blobId);
    const before = await scrape(portico.url);
    expect((await admin.request(`/blobs/${blobId}`)).status).toBe(404);
    expect((await fetch(new URL(`/nowhere/${ADMIN.email}`, portico.url))).status).toBe(404);
    expect((await fetch(new URL('/health', portico.url))).status).toBe(200);
    expect((await fetch(new URL('/ready', portico.url))).status).toBe(200);
    await fetch(new URL('/graphql', portico.url), { method: 'PROPFIND' });
    const change = delta(before, await scrape(portico.url));
    expect(change('portico_http_requests_total', { method: 'GET', route: '/blobs/:id', status: '404' })).toBe(
      1,
    );
    expect(change('portico_http_requests_total', { method: 'GET', route: 'other', status: '404' })).toBe(1);
    expect(change('portico_http_requests_total', { method: 'GET', route: '/health', status: '200' })).toBe(1);
    expect(change('portico_http_requests_total', { method: 'GET', route: '/ready', status: '200' })).toBe(1);
    expect(change('portico_http_requests_total', { method: 'OTHER', route: '/graphql' })).toBe(1);
    // Yoga answers /health before any plugin: counted, not timed.
    expect(change('portico_http_request_duration_seconds', { method: 'GET', route: '/ready' })).toBe(1);
    expect(change('portico_http_request_duration_seconds', { method: 'GET', route: '/blobs/:id' })).toBe(1);
  });

  it('counts open subscriptions by transport, and no more once their clients go away', async () => {
    const open = (scraped: Scrape, transport: string) =>
      scraped.value('portico_subscriptions_open', { transport });
    const before = await scrape(portico.url);

    const ws = connectWs(portico.url, { client: admin });
    const overWs = collect(ws.client.iterate({ query: queryText(SessionRevokedDocument) }));
    await scrapeUntil(
      portico.url,
      (scraped) => open(scraped, 'websocket') === 1,
      'the WebSocket subscription',
    );

    const leave = new AbortController();
    const overSse = await admin.request('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: queryText(SessionRevokedDocument) }),
      signal: leave.signal,
    });
    expect(overSse.status).toBe(200);
    const both = await scrapeUntil(
      portico.url,
      (scraped) => open(scraped, 'sse') === 1,
      'the SSE subscription',
    );
    expect(open(both, 'websocket')).toBe(1);

    await ws.client.dispose();
    await overWs.done;
    leave.abort();
    const after = await scrapeUntil(
      portico.url,
      (scraped) => open(scraped, 'websocket') === 0 && open(scraped, 'sse') === 0,
      'both subscriptions to close',
    );
    const change = delta(before, after);
    expect(
      change('portico_graphql_operations_total', {
        operation_name: 'SessionRevoked',
        operation_type: 'subscription',
        outcome: 'ok',
      }),
    ).toBe(2);
  });

  it('reports both databases up under their backend', async () => {
    const scraped = await scrape(portico.url);
    const kind = backend === 'postgres' ? 'postgres' : 'sqlite';
    expect(scraped.value('portico_database_up', { database: 'system', backend: kind })).toBe(1);
    expect(scraped.value('portico_database_up', { database: 'store', backend: kind })).toBe(1);
    // One database holds both here.
    const dialect = backend === 'postgres' ? 'postgresql' : 'sqlite';
    expect(
      scraped.value('portico_database_statement_duration_seconds', { database: 'system+store', dialect }),
    ).toBeGreaterThan(0);
  });

  it('has every series the sample Grafana dashboard queries', async () => {
    const dashboard = await readFile(join(import.meta.dirname, '../../docs/grafana-dashboard.json'), 'utf8');
    const queried = new Set(
      [...dashboard.matchAll(/\b(?:portico|process|nodejs)_\w+/g)].map(([name]) =>
        name.replace(/_(bucket|count|sum)$/, ''),
      ),
    );
    expect(queried.size).toBeGreaterThan(15);
    const scraped = await scrape(portico.url);
    expect([...queried].filter((name) => scraped.type(name) === undefined)).toEqual([]);
  });

  it('carries no id and no email in any label', async () => {
    const values = (await scrape(portico.url)).labelValues();
    expect(values.length).toBeGreaterThan(0);
    for (const secret of secrets) {
      expect(values.filter((value) => value.includes(secret))).toEqual([]);
    }
    expect(values.filter((value) => value.includes('@'))).toEqual([]);
  });
});

describe.runIf(backends.includes('postgres'))('database availability on postgres', () => {
  it('is 0 while the database is away and 1 again once it answers', async () => {
    const database = await createTestDatabase('postgres', '/tmp');
    const { outage, url: proxied } = await Outage.before(database.url);
    const portico = await startGateway({
      backend: 'postgres',
      databaseUrl: proxied,
      env: WITH_TOKEN,
    });
    const up = (scraped: Scrape) => [
      scraped.value('portico_database_up', { database: 'system', backend: 'postgres' }),
      scraped.value('portico_database_up', { database: 'store', backend: 'postgres' }),
    ];
    try {
      expect(up(await scrape(portico.url))).toEqual([1, 1]);
      await outage.down();
      expect(up(await scrape(portico.url))).toEqual([0, 0]);
      await outage.up();
      await scrapeUntil(
        portico.url,
        (scraped) => up(scraped).join() === '1,1',
        'the database to answer again',
      );
    } finally {
      await portico.close();
      await outage.down();
      await database.drop();
    }
  });
});

describe('a remote store', () => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend: 'remote-sqlite', config: CONFIG, env: WITH_TOKEN });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('is reported under the backend remote, its calls timed by outcome', async () => {
    const before = await scrape(portico.url);
    const put = await admin.gql(PutDocumentDocument, { collection: 'notes', id: 'n1', data: { n: 1 } });
    expect(put.errors).toBeUndefined();
    const stale = await admin.gql(PutDocumentDocument, {
      collection: 'notes',
      id: 'n1',
      data: { n: 2 },
      expectedVersion: 7,
    });
    expect(stale.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const after = await scrape(portico.url);
    const change = delta(before, after);
    expect(after.value('portico_database_up', { database: 'store', backend: 'remote' })).toBe(1);
    expect(after.value('portico_database_up', { database: 'system', backend: 'sqlite' })).toBe(1);
    expect(change('portico_remote_store_call_duration_seconds', { outcome: 'ok' })).toBeGreaterThan(0);
    expect(change('portico_remote_store_call_duration_seconds', { outcome: 'refused' })).toBe(1);
  });
});

/** The brokered adapters carry each event's publish time: its lag is observed where it arrives. */
const brokers: { adapter: string; env: Record<string, string> }[] = [
  ...(backends.includes('postgres') ? [{ adapter: 'postgresql', env: {} }] : []),
  ...(redisUrl ? [{ adapter: 'redis', env: { REDIS_URL: redisUrl } }] : []),
];

describe.runIf(backends.includes('postgres')).each(brokers)(
  'pub/sub lag through $adapter',
  ({ adapter, env }) => {
    it('is observed on the instance that receives another one’s event', async () => {
      const first = await startGateway({ backend: 'postgres', env: { ...WITH_TOKEN, ...env } });
      const second = await startGateway({
        backend: 'postgres',
        databaseUrl: first.databaseUrl,
        env: { ...WITH_TOKEN, ...env },
      });
      try {
        const admin = await bootstrapAdmin(first);
        const before = await scrape(second.url);
        // The first instance publishes session.revoked; the second's session cache listens to it.
        expect((await admin.gql(LogOutDocument)).errors).toBeUndefined();
        const after = await scrapeUntil(
          second.url,
          (scraped) =>
            scraped.value('portico_pubsub_delivery_lag_seconds', { adapter }) >
            before.value('portico_pubsub_delivery_lag_seconds', { adapter }),
          'the event on the second instance',
        );
        const lag = (series: string, labels: Record<string, string> = {}) =>
          after.value(series, { adapter, ...labels });
        // Same host, same clock: under a second each.
        expect(lag('portico_pubsub_delivery_lag_seconds_sum')).toBeGreaterThanOrEqual(0);
        expect(lag('portico_pubsub_delivery_lag_seconds_bucket', { le: '1' })).toBe(
          lag('portico_pubsub_delivery_lag_seconds'),
        );
      } finally {
        await second.stop();
        await first.close();
      }
    });
  },
);
