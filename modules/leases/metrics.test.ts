import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireLeaseDocument,
  PutDocumentDocument,
  ReleaseLeaseDocument,
  SignUpDocument,
} from '../../client/index.ts';
import {
  bootstrapAdmin,
  postBlob,
  startGateway,
  storeKinds,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { METRICS_TOKEN, scrape } from '../../test/metrics.ts';

const CONFIG = {
  signup: 'open',
  roles: { worker: ['jobs:read', 'jobs:write', 'blobs:write'] },
  defaultRoles: ['worker'],
  rateLimits: { signUps: 100 },
  collections: { jobs: {} },
  leases: { maxTtlSeconds: 60, maxWaitSeconds: 5 },
};

describe.each(storeKinds)('lease metrics on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let worker: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG, env: { PORTICO_METRICS_TOKEN: METRICS_TOKEN } });
    admin = await bootstrapAdmin(portico);
    worker = portico.client();
    const signedUp = await worker.gql(SignUpDocument, {
      input: { email: 'worker@example.com', password: 'a long enough passphrase' },
    });
    expect(signedUp.errors).toBeUndefined();
  });
  afterAll(() => portico?.close());

  const acquire = async (client: TestClient, key: string, waitSeconds?: number) => {
    const result = await client.gql(AcquireLeaseDocument, { key, ttlSeconds: 30, waitSeconds });
    expect(result.errors).toBeUndefined();
    return result.data!.acquireLease;
  };

  it('counts grants, and waits once each however long they last', async () => {
    const before = await scrape(portico.url);
    const held = await acquire(admin, 'metrics/wait');
    const waiting = acquire(worker, 'metrics/wait', 5);
    await expect
      .poll(async () => (await scrape(portico.url)).value('portico_lease_waits_total'), { timeout: 5000 })
      .toBe(before.value('portico_lease_waits_total') + 1);
    await admin.gql(ReleaseLeaseDocument, { key: 'metrics/wait', token: held!.token });
    expect((await waiting)?.mine).toBe(true);
    // Held: one try, no grant, no wait.
    expect(await acquire(admin, 'metrics/wait')).toBeNull();
    const after = await scrape(portico.url);
    expect(after.value('portico_lease_grants_total') - before.value('portico_lease_grants_total')).toBe(2);
    expect(after.value('portico_lease_waits_total') - before.value('portico_lease_waits_total')).toBe(1);
  });

  it('counts the writes refused for a stale fencing token, documents and blobs alike', async () => {
    const first = await acquire(admin, 'metrics/fence');
    await admin.gql(ReleaseLeaseDocument, { key: 'metrics/fence', token: first!.token });
    const second = await acquire(admin, 'metrics/fence');
    expect(second!.token).toBeGreaterThan(first!.token);
    const before = await scrape(portico.url);

    const stale = { lease: 'metrics/fence', token: first!.token };
    const put = await admin.gql(PutDocumentDocument, { collection: 'jobs', data: { n: 1 }, fence: stale });
    expect(put.errors?.[0]?.extensions?.code).toBe('FENCE_REJECTED');
    const current = { lease: 'metrics/fence', token: second!.token };
    expect(
      (await admin.gql(PutDocumentDocument, { collection: 'jobs', data: { n: 2 }, fence: current })).errors,
    ).toBeUndefined();
    const upload = await admin.request(`/blobs?lease=metrics%2Ffence&token=${first!.token}`, {
      method: 'POST',
      headers: { 'x-portico-csrf': '1', 'content-type': 'application/octet-stream' },
      body: new Uint8Array(10),
    });
    expect(upload.status).toBe(409);
    expect((await postBlob(admin, new Uint8Array(10))).status).toBe(201);

    const after = await scrape(portico.url);
    expect(
      after.value('portico_lease_fence_rejections_total') -
        before.value('portico_lease_fence_rejections_total'),
    ).toBe(2);
    expect(after.value('portico_graphql_errors_total', { code: 'FENCE_REJECTED' })).toBe(
      before.value('portico_graphql_errors_total', { code: 'FENCE_REJECTED' }) + 1,
    );
  });
});
