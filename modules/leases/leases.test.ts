import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireLeaseDocument,
  BlobDocument,
  BlobsDocument,
  ConsoleLeasesDocument,
  CreateApiKeyDocument,
  DeleteBlobDocument,
  DeleteDocumentDocument,
  DocumentDocument,
  LeaseDocument,
  LeasesDocument,
  LogInDocument,
  LogOutDocument,
  PatchDocumentDocument,
  PutDocumentDocument,
  type PutDocumentMutationVariables,
  ReleaseLeaseDocument,
  RenewLeaseDocument,
  RevokeApiKeyDocument,
  SignUpDocument,
} from '../../client/index.ts';
import {
  bootstrapAdmin,
  codeOf,
  ManualClock,
  startGateway,
  storeKinds,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import leases from './index.ts';

const CONFIG = {
  signup: 'open',
  roles: { worker: ['jobs:read', 'jobs:write', 'blobs:write'] },
  defaultRoles: ['worker'],
  rateLimits: { signUps: 100 },
  session: { idleTimeoutMinutes: 60 },
  collections: { jobs: {} },
  leases: { maxTtlSeconds: 60, maxWaitSeconds: 5, sweepSeconds: 1 },
};

describe.each(storeKinds)('leases on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  const clock = new ManualClock();
  let users = 0;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG, clock });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  async function newUser() {
    const client = portico.client();
    const result = await client.gql(SignUpDocument, {
      input: { email: `worker${++users}@example.com`, password: 'a long enough passphrase' },
    });
    expect(result.errors).toBeUndefined();
    return client;
  }

  async function acquire(client: TestClient, key: string, ttlSeconds = 30, waitSeconds?: number) {
    const result = await client.gql(AcquireLeaseDocument, { key, ttlSeconds, waitSeconds });
    expect(result.errors).toBeUndefined();
    return result.data!.acquireLease;
  }
  const release = async (client: TestClient, key: string, token: number) =>
    (await client.gql(ReleaseLeaseDocument, { key, token })).data?.releaseLease;
  const leaseOf = async (client: TestClient, key: string) =>
    (await client.gql(LeaseDocument, { key })).data?.lease;
  /** A write to the collection `jobs`. */
  const putJob = (client: TestClient, variables: Omit<PutDocumentMutationVariables, 'collection'>) =>
    client.gql(PutDocumentDocument, { collection: 'jobs', ...variables });

  it('grants a free key once, with a token that grows with every grant', async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    const first = await acquire(alice, 'report');
    expect(first).toMatchObject({ key: 'report', token: 1, mine: true });
    expect(new Date(first!.expiresAt).getTime() - new Date(first!.acquiredAt).getTime()).toBe(30_000);
    // The holder is opaque: no session id in it.
    expect(first!.holder).toMatch(/^[0-9a-f]{24}$/);

    expect(await acquire(bob, 'report')).toBeNull();
    expect(await acquire(alice, 'report')).toBeNull(); // not re-entrant: one grant at a time
    expect(await leaseOf(bob, 'report')).toMatchObject({ token: 1, mine: false, holder: first!.holder });

    expect(await release(bob, 'report', 1)).toBe(false); // not the holder
    expect(await release(alice, 'report', 1)).toBe(true);
    expect(await release(alice, 'report', 1)).toBe(false); // a stale release is a no-op
    expect(await leaseOf(alice, 'report')).toBeNull();

    const second = await acquire(bob, 'report');
    expect(second).toMatchObject({ token: 2, mine: true });
    expect(await release(alice, 'report', 1)).toBe(false); // the old token releases nothing
    expect(await leaseOf(alice, 'report')).toMatchObject({ token: 2 });
  });

  it('ends a lease at its expiry: a renewal or release after it fails, and the next grant gets a newer token', async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    const lease = await acquire(alice, 'expiring', 1);
    const renewed = await alice.gql(RenewLeaseDocument, {
      key: 'expiring',
      token: lease!.token,
      ttlSeconds: 1,
    });
    expect(renewed.data?.renewLease.token).toBe(lease!.token);
    expect(new Date(renewed.data!.renewLease.expiresAt).getTime()).toBeGreaterThan(
      new Date(lease!.expiresAt).getTime() - 1,
    );
    await sleep(1100);
    expect(await leaseOf(alice, 'expiring')).toBeNull();
    const late = await alice.gql(RenewLeaseDocument, { key: 'expiring', token: lease!.token, ttlSeconds: 5 });
    expect(codeOf(late)).toBe('LEASE_LOST');
    expect(await release(alice, 'expiring', lease!.token)).toBe(false);
    expect(await acquire(bob, 'expiring')).toMatchObject({ token: lease!.token + 1 });
    // Renewing someone else's lease with its current token is refused too.
    expect(
      codeOf(
        await alice.gql(RenewLeaseDocument, { key: 'expiring', token: lease!.token + 1, ttlSeconds: 5 }),
      ),
    ).toBe('LEASE_LOST');
  });

  it('waits for a release, then grants the lease to the waiter', async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    const held = await acquire(alice, 'queue');
    const waiting = acquire(bob, 'queue', 30, 5);
    await sleep(200);
    expect(await release(alice, 'queue', held!.token)).toBe(true);
    const granted = await waiting;
    expect(granted).toMatchObject({ token: held!.token + 1, mine: true });
  });

  it('waits for an expiry, and gives up with null after waitSeconds', async () => {
    const [alice, bob, carol] = [await newUser(), await newUser(), await newUser()];
    const held = await acquire(alice, 'slow', 1);
    expect(await acquire(bob, 'slow', 30, 3)).toMatchObject({ token: held!.token + 1 });
    const started = Date.now();
    expect(await acquire(carol, 'slow', 30, 1)).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('enforces the limits of docs/configuration.md at and past the edge', async () => {
    const alice = await newUser();
    const key256 = `${'k'.repeat(255)}é`;
    expect(await acquire(alice, key256, 60, 0)).toMatchObject({ key: key256, token: 1 });
    for (const variables of [
      { key: 'k'.repeat(257), ttlSeconds: 1 },
      { key: '', ttlSeconds: 1 },
      { key: 'nul\u0000key', ttlSeconds: 1 },
      { key: 'ok', ttlSeconds: 0 },
      { key: 'ok', ttlSeconds: 61 },
      { key: 'ok', ttlSeconds: 1, waitSeconds: 6 },
      { key: 'ok', ttlSeconds: 1, waitSeconds: -1 },
    ]) {
      const result = await alice.gql(AcquireLeaseDocument, variables);
      expect(codeOf(result), JSON.stringify(variables)).toBe('BAD_USER_INPUT');
    }
    expect(codeOf(await alice.gql(RenewLeaseDocument, { key: key256, token: 1, ttlSeconds: 61 }))).toBe(
      'BAD_USER_INPUT',
    );
    expect(await acquire(alice, 'edge', 1, 5)).toMatchObject({ token: 1 });
  });

  it('needs a credential', async () => {
    const anonymous = portico.client();
    expect(codeOf(await anonymous.gql(AcquireLeaseDocument, { key: 'x', ttlSeconds: 1 }))).toBe(
      'UNAUTHENTICATED',
    );
    expect(codeOf(await anonymous.gql(LeaseDocument, { key: 'x' }))).toBe('UNAUTHENTICATED');
  });

  it('releases the leases of a session that logs out, and of a revoked API key', async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    await acquire(alice, 'session-held');
    await alice.gql(LogOutDocument);
    // Released on the revocation event, as soon as it arrives (on a remote store, a round trip later).
    await expect.poll(() => acquire(bob, 'session-held')).toMatchObject({ token: 2 });

    // A key holds leases only with the scope `leases`.
    const ticket = await bob.gql(CreateApiKeyDocument, { name: 'ci', scopes: ['leases'] });
    const { secret, apiKey } = ticket.data!.createApiKey;
    const program = portico.client();
    const auth = { authorization: `Bearer ${secret}` };
    const viaKey = await program.gql(AcquireLeaseDocument, { key: 'key-held', ttlSeconds: 30 }, auth);
    expect(viaKey.data?.acquireLease).toMatchObject({ token: 1, mine: true });
    // The key's lease is not the session's, though both are bob's.
    expect(await leaseOf(bob, 'key-held')).toMatchObject({ mine: false });
    await bob.gql(RevokeApiKeyDocument, { id: apiKey.id });
    await expect.poll(() => leaseOf(bob, 'key-held')).toBeNull();
  });

  it('fences document writes: a stale token is rejected and the newer holder’s write stands', async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    const mine = await acquire(alice, 'job-7', 1);
    const fence = { lease: 'job-7', token: mine!.token };
    const created = await putJob(alice, { id: 'job-7', data: { step: 1 }, fence });
    expect(created.data?.putDocument.version).toBe(1);

    await sleep(1100); // alice stalls past her TTL; bob takes over
    const theirs = await acquire(bob, 'job-7', 30);
    const bobs = await putJob(bob, {
      id: 'job-7',
      data: { step: 2 },
      fence: { lease: 'job-7', token: theirs!.token },
    });
    expect(bobs.errors).toBeUndefined();

    const stale = await putJob(alice, { id: 'job-7', data: { step: 99 }, fence });
    expect(codeOf(stale)).toBe('FENCE_REJECTED');
    const patch = await alice.gql(PatchDocumentDocument, {
      collection: 'jobs',
      id: 'job-7',
      patch: { step: 98 },
      fence,
    });
    expect(codeOf(patch)).toBe('FENCE_REJECTED');
    const remove = await alice.gql(DeleteDocumentDocument, { collection: 'jobs', id: 'job-7', fence });
    expect(codeOf(remove)).toBe('FENCE_REJECTED');
    const now = await admin.gql(DocumentDocument, { collection: 'jobs', id: 'job-7' });
    expect(now.data?.document?.version).toBe(2);
    expect(now.data?.document?.data).toEqual({ step: 2 });

    // A lease never granted, or a token from the future, fences nothing in.
    expect(codeOf(await putJob(bob, { data: {}, fence: { lease: 'no-such-lease', token: 1 } }))).toBe(
      'FENCE_REJECTED',
    );
    expect(codeOf(await putJob(bob, { data: {}, fence: { lease: 'job-7', token: theirs!.token + 1 } }))).toBe(
      'FENCE_REJECTED',
    );
  });

  it('fences blob writes: a stale token uploads and deletes nothing', async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    const lease = await acquire(alice, 'blob-lock', 30);
    const uploadAs = (client: TestClient, token: number) =>
      client.request(`/blobs?lease=blob-lock&token=${token}`, {
        method: 'POST',
        headers: { 'x-portico-csrf': '1', 'content-type': 'text/plain' },
        body: `written under token ${token}`,
      });
    const fresh = await uploadAs(alice, lease!.token);
    expect(fresh.status).toBe(201);
    const { id } = (await fresh.json()) as { id: string };

    expect(await release(alice, 'blob-lock', lease!.token)).toBe(true);
    const newer = await acquire(bob, 'blob-lock', 30);
    const stale = await uploadAs(alice, lease!.token);
    expect(stale.status).toBe(409);
    expect(await stale.json()).toMatchObject({ code: 'FENCE_REJECTED' });
    const mine = await alice.gql(BlobsDocument);
    expect(mine.data?.blobs.edges).toHaveLength(1);
    expect(
      (
        await alice.request('/blobs?lease=blob-lock&token=x', {
          method: 'POST',
          headers: { 'x-portico-csrf': '1' },
          body: 'x',
        })
      ).status,
    ).toBe(400);

    const refused = await alice.gql(DeleteBlobDocument, {
      id,
      fence: { lease: 'blob-lock', token: lease!.token },
    });
    expect(codeOf(refused)).toBe('FENCE_REJECTED');
    expect((await alice.gql(BlobDocument, { id })).data?.blob).toMatchObject({ id });
    // The newer holder's token lets the owner's delete through.
    const deleted = await alice.gql(DeleteBlobDocument, {
      id,
      fence: { lease: 'blob-lock', token: newer!.token },
    });
    expect(deleted.data).toEqual({ deleteBlob: true });
  });

  it('lists live leases by prefix for admins, page by page', async () => {
    const alice = await newUser();
    for (const key of ['list/a', 'list/b', 'list/c', 'listless']) await acquire(alice, key);
    const first = await admin.gql(LeasesDocument, { prefix: 'list/', first: 2 });
    expect(first.data?.leases.edges.map((edge) => edge.node.key)).toEqual(['list/a', 'list/b']);
    expect(first.data?.leases.pageInfo.hasNextPage).toBe(true);
    const second = await admin.gql(LeasesDocument, {
      prefix: 'list/',
      first: 2,
      after: first.data!.leases.pageInfo.endCursor,
    });
    expect(second.data?.leases.edges.map((edge) => edge.node.key)).toEqual(['list/c']);
    expect(second.data?.leases.pageInfo.hasNextPage).toBe(false);
    expect(codeOf(await alice.gql(LeasesDocument, {}))).toBe('FORBIDDEN');
  });

  it('shows admins who holds each lease, the user and the kind of credential, and nobody else', async () => {
    const alice = await newUser();
    const aliceEmail = `worker${users}@example.com`;
    await acquire(alice, 'who/session');
    const ticket = await alice.gql(CreateApiKeyDocument, { name: 'backup job', scopes: ['leases'] });
    const auth = { authorization: `Bearer ${ticket.data!.createApiKey.secret}` };
    const viaKey = await portico.client().gql(AcquireLeaseDocument, { key: 'who/key', ttlSeconds: 30 }, auth);
    expect(viaKey.errors).toBeUndefined();
    const listed = await portico.gateway.runtime.instances
      .of(leases)
      .withLease('who/server', { ttlSeconds: 30 }, async () => {
        const result = await admin.gql(ConsoleLeasesDocument, { prefix: 'who/' });
        expect(result.errors).toBeUndefined();
        return result.data!.leases.edges.map((edge) => edge.node);
      });
    const alicesUser = expect.objectContaining({ email: aliceEmail });
    expect(listed).toEqual([
      expect.objectContaining({
        key: 'who/key',
        holderKind: 'API_KEY',
        holderUser: alicesUser,
        holderApiKey: expect.objectContaining({ name: 'backup job' }),
      }),
      expect.objectContaining({
        key: 'who/server',
        holderKind: 'SERVER',
        holderUser: null,
        holderApiKey: null,
      }),
      expect.objectContaining({
        key: 'who/session',
        holderKind: 'SESSION',
        holderUser: alicesUser,
        holderApiKey: null,
      }),
    ]);
    // The holder keeps its opaque form alongside.
    expect(listed.map((lease) => lease.holder)).toEqual(
      listed.map(() => expect.stringMatching(/^[0-9a-f]{24}$/)),
    );

    // Not even the holder itself sees them without admin, through any field that answers a Lease.
    const holderFields = 'key holderKind holderUser { email } holderApiKey { name }';
    const empty = { holderKind: null, holderUser: null, holderApiKey: null };
    for (const client of [alice, await newUser()]) {
      const seen = await client.gql<{ lease: Record<string, unknown> }>(
        `query { lease(key: "who/session") { ${holderFields} } }`,
      );
      expect(seen.errors).toBeUndefined();
      expect(seen.data?.lease).toEqual({ key: 'who/session', ...empty });
    }
    const viaKeyFields = await portico
      .client()
      .gql<{ lease: Record<string, unknown> }>(
        `query { lease(key: "who/key") { ${holderFields} } }`,
        {},
        auth,
      );
    expect(viaKeyFields.data?.lease).toEqual({ key: 'who/key', ...empty });
    const acquired = await alice.gql<{ acquireLease: Record<string, unknown> }>(
      `mutation { acquireLease(key: "who/mine", ttlSeconds: 30) { ${holderFields} } }`,
    );
    expect(acquired.data?.acquireLease).toEqual({ key: 'who/mine', ...empty });
  });

  // Last: moving the clock past the idle timeout ends every session of this gateway.
  it('releases the leases of a session that times out (the sweep has no event to go by)', async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    await acquire(alice, 'idle-held');
    clock.advance(61 * 60_000);
    // bob's session timed out too: sign in again.
    await bob.gql(LogInDocument, {
      email: `worker${users}@example.com`,
      password: 'a long enough passphrase',
    });
    await expect.poll(() => leaseOf(bob, 'idle-held'), { timeout: 5000 }).toBeNull();
    expect(await acquire(bob, 'idle-held')).toMatchObject({ token: 2 });
  });
});
