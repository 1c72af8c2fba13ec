import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcquireLeaseDocument, LeaseDocument, LogInDocument } from '../../client/index.ts';
import { defineModule, PorticoError } from '../../src/index.ts';
import {
  ADMIN,
  bootstrapAdmin,
  codeOf,
  startGateway,
  storeKinds,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { type Acquire, contend, violations } from '../../test/leases.ts';
import leases from './index.ts';

/**
 * Test-only fields: a job run under `withLease`, and a deliberately broken acquire
 * (read, then write, not one conditional statement) that the exclusion checker must catch.
 */
const probe = defineModule({
  name: 'lease-probe',
  dependsOn: ['leases'],
  graphql(builder) {
    builder.mutationField('runLocked', (t) =>
      t.field({
        type: 'SafeInt',
        authScopes: { public: true },
        args: {
          key: t.arg.string({ required: true }),
          holdMs: t.arg.int({ required: true }),
          fail: t.arg.boolean(),
        },
        resolve: (_root, args, { runtime }) =>
          runtime.instances.of(leases).withLease(args.key, { ttlSeconds: 1 }, async (lease) => {
            await sleep(args.holdMs);
            if (args.fail) throw new PorticoError('BAD_USER_INPUT', 'The job failed on purpose.');
            return lease.token;
          }),
      }),
    );
    builder.mutationField('brokenAcquireLease', (t) =>
      t.field({
        type: 'JSONObject',
        nullable: true,
        authScopes: { authenticated: true },
        args: { key: t.arg.string({ required: true }), ttlSeconds: t.arg.int({ required: true }) },
        resolve: async (_root, { key, ttlSeconds }, { runtime, viewer }) => {
          const connection = runtime.db.store!.em.fork().getConnection();
          const [row] = await connection.execute<{ token: number | string; expires_at: number | string }[]>(
            'select token, expires_at from leases where key = ?',
            [key],
          );
          const now = Date.now();
          if (row && Number(row.expires_at) > now) return null;
          await sleep(Math.random() * 5); // the window a real acquire must not have
          const token = Number(row?.token ?? 0) + 1;
          const holder = `s:${viewer.sessionId}`;
          await connection.execute(
            `insert into leases (key, holder, token, acquired_at, expires_at) values (?, ?, ?, ?, ?)
             on conflict (key) do update set holder = excluded.holder, token = excluded.token,
               acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
            [key, holder, token, now, now + ttlSeconds * 1000],
          );
          return {
            key,
            token,
            acquiredAt: new Date(now).toISOString(),
            expiresAt: new Date(now + ttlSeconds * 1000).toISOString(),
          };
        },
      }),
    );
  },
});

const BROKEN_ACQUIRE =
  'mutation ($key: String!, $ttl: Int!) { brokenAcquireLease(key: $key, ttlSeconds: $ttl) }';

describe.each(storeKinds)('lease exclusion on %s', (backend) => {
  let portico: TestGateway;
  let contenders: TestClient[];

  beforeAll(async () => {
    portico = await startGateway({ backend, modules: [probe], config: { leases: { maxWaitSeconds: 5 } } });
    await bootstrapAdmin(portico);
    // One session per contender: each is a distinct holder. One login at a time: 40 sent at
    // once count 40 attempts against the account's limit of 10 (docs/security.md).
    contenders = [];
    for (let i = 0; i < 40; i++) {
      const client = portico.client();
      const result = await client.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
      expect(result.errors).toBeUndefined();
      contenders.push(client);
    }
  });
  afterAll(() => portico?.close());

  it('never grants a key to two holders at once: 40 contenders on 3 keys for 10 s', async () => {
    const grants = await contend(contenders, ['a', 'b', 'c'], 10_000, async (client, key) => {
      const result = await client.gql(AcquireLeaseDocument, { key, ttlSeconds: 1, waitSeconds: 2 });
      expect(result.errors).toBeUndefined();
      return result.data!.acquireLease;
    });
    expect(grants.length).toBeGreaterThan(100);
    expect(violations(grants)).toEqual([]);
    // Some grants ran out before their release: expiry hand-overs are checked too.
    expect(grants.some((grant) => grant.ranOut)).toBe(true);
  }, 30_000);

  // The broken acquire writes the store's own table: the checker is proven on the local stores.
  it.skipIf(backend.startsWith('remote'))(
    'negative control: the checker catches an acquire that reads, then writes',
    async () => {
      const grants = await contend(contenders, ['x', 'y', 'z'], 3000, async (client, key) => {
        const result = await client.gql<{ brokenAcquireLease: Awaited<ReturnType<Acquire>> }>(
          BROKEN_ACQUIRE,
          {
            key,
            ttl: 1,
          },
        );
        expect(result.errors).toBeUndefined();
        return result.data!.brokenAcquireLease;
      });
      expect(violations(grants).length).toBeGreaterThan(0);
    },
    30_000,
  );

  it('withLease holds the lease while its function runs, renewing it past the TTL, then releases it', async () => {
    const [observer] = contenders;
    const running = observer!.gql<{ runLocked: number }>(
      'mutation { runLocked(key: "nightly", holdMs: 2500) }',
    );
    await sleep(300);
    const held = await observer!.gql(LeaseDocument, { key: 'nightly' });
    expect(held.data?.lease).not.toBeNull();
    await sleep(1700); // past the 1 s TTL: only renewals keep it
    expect((await observer!.gql(LeaseDocument, { key: 'nightly' })).data?.lease?.token).toBe(
      held.data!.lease!.token,
    );
    expect(
      (await observer!.gql(AcquireLeaseDocument, { key: 'nightly', ttlSeconds: 1 })).data?.acquireLease,
    ).toBeNull();
    const result = await running;
    expect(result.data?.runLocked).toBe(held.data!.lease!.token);
    expect((await observer!.gql(LeaseDocument, { key: 'nightly' })).data?.lease).toBeNull();
  });

  it('withLease releases the lease when its function throws', async () => {
    const [observer] = contenders;
    const failed = await observer!.gql('mutation { runLocked(key: "flaky", holdMs: 10, fail: true) }');
    expect(codeOf(failed)).toBe('BAD_USER_INPUT');
    expect((await observer!.gql(LeaseDocument, { key: 'flaky' })).data?.lease).toBeNull();
    // And a second run gets the next token.
    const again = await observer!.gql<{ runLocked: number }>(
      'mutation { runLocked(key: "flaky", holdMs: 10) }',
    );
    expect(again.data?.runLocked).toBe(2);
  });
});
