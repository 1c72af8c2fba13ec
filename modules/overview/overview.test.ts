import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GatewayOverviewDocument,
  GatewayOverviewSampledDocument,
  type GatewayOverviewSampledSubscription,
  SessionRevokedDocument,
  ViewerDocument,
} from '../../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  collect,
  connectSse,
  connectWs,
  eventually,
  queryText,
  type StreamCredential,
  signUpClient,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

type Update = {
  data?: GatewayOverviewSampledSubscription;
  errors?: readonly { extensions?: { code?: string } }[];
};

function subscribe(
  portico: TestGateway,
  transport: 'ws' | 'sse',
  credential: StreamCredential,
  query: string,
) {
  const stream =
    transport === 'ws'
      ? connectWs(portico.url, credential).client.iterate({ query })
      : connectSse(portico.url, credential).iterate({ query });
  return collect(stream as AsyncIterableIterator<Update>);
}

/** The contract codes a stream ended with, whether as results or as its failure. */
function codesOf(stream: { results: Update[]; error?: unknown }): string[] {
  const failed = Array.isArray(stream.error) ? stream.error : stream.error ? [stream.error] : [];
  return [...stream.results.flatMap((result) => result.errors ?? []), ...failed].map(
    (error) => (error as { extensions?: { code?: string } }).extensions?.code ?? String(error),
  );
}

const overviewOf = async (client: TestClient) => {
  const result = await client.gql(GatewayOverviewDocument);
  if (!result.data) throw new Error(JSON.stringify(result.errors));
  return result.data.gatewayOverview;
};

const millis = (sample: { at: string }) => Date.parse(sample.at);

describe.each(backends)('the gateway overview on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let member: TestClient;
  const BACKEND = backend === 'sqlite' ? 'SQLITE' : 'POSTGRES';

  beforeAll(async () => {
    portico = await startGateway({ backend, config: { signup: 'open' } });
    admin = await bootstrapAdmin(portico);
    member = await signUpClient(portico, 'member@example.com', 'a long enough passphrase');
  });
  afterAll(() => portico?.close());

  it('keeps a sample a second since the start, and says that both databases answer', async () => {
    await expect
      .poll(async () => (await overviewOf(admin)).samples.length, { timeout: 10_000 })
      .toBeGreaterThan(3);
    const overview = await overviewOf(admin);
    expect(overview.intervalSeconds).toBe(1);
    const times = overview.samples.map(millis);
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1]!);
    // A busy machine may delay a tick, never speed one up: on average a second apart, give or take.
    const spacing = (times.at(-1)! - times[0]!) / (times.length - 1);
    expect(spacing).toBeGreaterThan(900);
    expect(spacing).toBeLessThan(2000);
    expect(overview.status).toEqual({
      checkedAt: expect.any(String),
      systemDatabase: { backend: BACKEND, up: true, reason: null },
      store: { backend: BACKEND, up: true, reason: null },
    });
  });

  it('is for admins only, as a query and as a subscription over the WebSocket and SSE', async () => {
    expect(codeOf(await member.gql(GatewayOverviewDocument))).toBe('FORBIDDEN');
    expect(codeOf(await portico.client().gql(GatewayOverviewDocument))).toBe('UNAUTHENTICATED');
    const query = queryText(GatewayOverviewSampledDocument);
    for (const transport of ['ws', 'sse'] as const) {
      const refused = subscribe(portico, transport, { client: member }, query);
      expect(codesOf(await refused.done)).toEqual(['FORBIDDEN']);
      const anonymous = subscribe(portico, transport, {}, query);
      expect(codesOf(await anonymous.done)).toEqual(['UNAUTHENTICATED']);
    }
  });

  it.each(['ws', 'sse'] as const)('pushes each new sample over %s, with the status', async (transport) => {
    const stream = subscribe(
      portico,
      transport,
      { client: admin },
      queryText(GatewayOverviewSampledDocument),
    );
    await eventually(() => stream.results.length >= 3, 'three samples', 10_000);
    stream.stop();
    const updates = stream.results.map((result) => result.data!.gatewayOverviewSampled);
    const [first, , third] = updates.map((update) => millis(update.sample));
    expect(third! - first!).toBeGreaterThan(1500);
    for (const update of updates) {
      expect(update.status.systemDatabase).toEqual({ backend: BACKEND, up: true, reason: null });
      expect(update.status.store).toEqual({ backend: BACKEND, up: true, reason: null });
    }
  });

  // What the gateway counts (the metrics plugins) shows in the next samples.
  it('follows the traffic: requests, errors, latency and open subscriptions', async () => {
    const watching = subscribe(portico, 'ws', { client: member }, queryText(SessionRevokedDocument));
    const alsoWatching = subscribe(portico, 'sse', { client: member }, queryText(SessionRevokedDocument));
    const since = Date.now();
    await Promise.all([
      ...Array.from({ length: 40 }, () => admin.gql(ViewerDocument)),
      ...Array.from({ length: 5 }, () => member.gql(GatewayOverviewDocument)),
    ]);
    const busy = async () =>
      (await overviewOf(admin)).samples.filter(
        (sample) => millis(sample) > since && sample.requestsPerSecond > 0,
      );
    await expect.poll(async () => (await busy()).length, { timeout: 5000 }).toBeGreaterThan(0);
    const samples = await busy();
    expect(samples.reduce((total, sample) => total + sample.requestsPerSecond, 0)).toBeGreaterThanOrEqual(
      45 / 2,
    );
    expect(samples.some((sample) => sample.graphqlErrorsPerSecond > 0)).toBe(true);
    expect(samples.every((sample) => sample.latencyP50Seconds! > 0)).toBe(true);
    expect(samples.every((sample) => sample.latencyP99Seconds! >= sample.latencyP50Seconds!)).toBe(true);
    await expect
      .poll(async () => (await overviewOf(admin)).samples.at(-1), { timeout: 5000 })
      .toMatchObject({ webSocketSubscriptions: 1, sseSubscriptions: 1 });
    watching.stop();
    alsoWatching.stop();
    await expect
      .poll(async () => (await overviewOf(admin)).samples.at(-1), { timeout: 5000 })
      .toMatchObject({ webSocketSubscriptions: 0, sseSubscriptions: 0 });
  });
});

describe('the gateway overview of a gateway whose data server went away', () => {
  let portico: TestGateway;
  beforeAll(async () => {
    portico = await startGateway({ backend: 'remote-sqlite' });
  });
  afterAll(() => portico?.close());

  it('says the store does not answer, and why, while the system database does', async () => {
    const admin = await bootstrapAdmin(portico);
    expect((await overviewOf(admin)).status.store).toEqual({ backend: 'REMOTE', up: true, reason: null });
    await portico.dataServer!.stop();
    await expect
      .poll(async () => (await overviewOf(admin)).status, { timeout: 10_000, interval: 500 })
      .toMatchObject({
        systemDatabase: { backend: 'SQLITE', up: true, reason: null },
        store: { backend: 'REMOTE', up: false, reason: expect.any(String) },
      });
  });
});
