import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireLeaseDocument,
  AuthDocument,
  ReleaseLeaseDocument,
  RequestLoginLinkDocument,
  ViewerDocument,
} from '../client/index.ts';
import {
  ADMIN,
  type Backend,
  backends,
  bootstrapAdmin,
  startGateway,
  type TestClient,
  type TestGateway,
} from './harness.ts';

/**
 * Module state lives on each gateway's module instances: two gateways in one process (one test
 * process here) share no sessions, bootstrap state, login methods, mail or leases, and stopping one
 * leaves the other serving.
 */
describe.each(backends)('two gateways side by side in one process on %s', (backend: Backend) => {
  let passwordOnly: TestGateway;
  let withLinks: TestGateway;
  let first: TestClient;
  let second: TestClient;

  beforeAll(async () => {
    passwordOnly = await startGateway({ backend, config: { methods: ['password'] } });
    withLinks = await startGateway({ backend, config: { methods: ['password', 'magic-link'] } });
    first = await bootstrapAdmin(passwordOnly);
  });
  afterAll(async () => {
    await passwordOnly?.close();
    await withLinks?.close();
  });

  const viewerEmail = async (client: TestClient) =>
    (await client.gql(ViewerDocument)).data!.viewer.user?.email ?? null;

  it('keeps bootstrap state apart: the second still waits for its first admin', async () => {
    const needs = await withLinks.client().gql(AuthDocument);
    expect(needs.data?.auth.needsBootstrap).toBe(true);
    second = await bootstrapAdmin(withLinks, { ...ADMIN, email: 'second@example.com' });
    expect(await viewerEmail(first)).toBe(ADMIN.email);
    expect(await viewerEmail(second)).toBe('second@example.com');
  });

  it('keeps sessions apart: one gateway’s cookie means nothing to the other', async () => {
    const stray = withLinks.client();
    for (const [name, value] of first.cookies) stray.cookies.set(name, value);
    expect(await viewerEmail(stray)).toBeNull();
  });

  it('keeps login methods and mail apart', async () => {
    const refused = await passwordOnly
      .client()
      .gql(RequestLoginLinkDocument, { email: 'second@example.com' });
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const sent = await withLinks.client().gql(RequestLoginLinkDocument, { email: 'second@example.com' });
    expect(sent.data).toEqual({ requestLoginLink: true });
    const mailed = (portico: TestGateway) =>
      portico.logs.some((line) => /mail to second@example\.com/.test(line.msg));
    await expect.poll(() => mailed(withLinks)).toBe(true);
    expect(mailed(passwordOnly)).toBe(false);
  });

  it('keeps leases apart, and the second serves on after the first stops', async () => {
    const acquire = (client: TestClient) => client.gql(AcquireLeaseDocument, { key: 'job', ttlSeconds: 30 });
    const onFirst = await acquire(first);
    const onSecond = await acquire(second);
    expect(onFirst.data?.acquireLease).toMatchObject({ token: 1, mine: true });
    expect(onSecond.data?.acquireLease).toMatchObject({ token: 1, mine: true });

    await passwordOnly.stop();

    expect(await viewerEmail(second)).toBe('second@example.com');
    const released = await second.gql(ReleaseLeaseDocument, { key: 'job', token: 1 });
    expect(released.data).toEqual({ releaseLease: true });
    expect((await acquire(second)).data?.acquireLease).toMatchObject({ token: 2, mine: true });
  });
});
