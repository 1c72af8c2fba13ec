// Two gateways of one deployment in one process: what one revokes, the other refuses at once,
// through the pub/sub (its session cache would otherwise trust it for a minute).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogOutDocument, ViewerDocument } from '../client/index.ts';
import { ADMIN, bootstrapAdmin, redisUrl, startGateway, TestClient, type TestGateway } from './harness.ts';
import { pubsubBackends, pubsubBackendsGone } from './pubsub.ts';

const postgresUrl = process.env.PORTICO_TEST_POSTGRES_URL;

type Deployment = {
  name: string;
  backend: 'sqlite' | 'postgres';
  env: Record<string, string>;
  adapter: string;
  /** Whether the other gateway hears of the revocation. */
  shared: boolean;
};

const deployments: Deployment[] = [
  ...(postgresUrl
    ? [{ name: 'PostgreSQL', backend: 'postgres' as const, env: {}, adapter: 'postgresql', shared: true }]
    : []),
  ...(redisUrl
    ? [
        {
          name: 'Redis',
          backend: 'sqlite' as const,
          env: { REDIS_URL: redisUrl },
          adapter: 'redis',
          shared: true,
        },
      ]
    : []),
  // The control: without a broker each gateway only hears itself.
  { name: 'no broker (control)', backend: 'sqlite', env: {}, adapter: 'local', shared: false },
];

const email = async (client: TestClient) =>
  (await client.gql(ViewerDocument)).data?.viewer.user?.email ?? null;

describe.each(deployments)('two gateways, $name', ({ backend, env, adapter, shared }) => {
  let first: TestGateway;
  let second: TestGateway;
  beforeAll(async () => {
    first = await startGateway({ backend, env });
    second = await startGateway({ backend, env, databaseUrl: first.databaseUrl });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
  });

  it('log which pub/sub they use', () => {
    for (const gateway of [first, second]) {
      expect(gateway.logs).toContainEqual(expect.objectContaining({ level: 30, pubsub: adapter }));
    }
  });

  it(
    shared
      ? 'a sign-out on one is refused by the other at once'
      : 'a sign-out on one is still trusted by the other, from its cache',
    async () => {
      const onFirst = await bootstrapAdmin(first);
      const onSecond = new TestClient(second.url);
      for (const [name, value] of onFirst.cookies) onSecond.cookies.set(name, value);
      // The second gateway now holds the session in its cache.
      expect(await email(onSecond)).toBe(ADMIN.email);

      const out = await onFirst.gql(LogOutDocument);
      expect(out.data?.logOut).toBe(true);
      // Far below the cache's minute; the slack covers the Redis tests pausing the server for 2 s.
      const deadline = Date.now() + 5000;
      let seen = await email(onSecond);
      while (shared && seen !== null && Date.now() < deadline) {
        await sleep(20);
        seen = await email(onSecond);
      }
      expect(seen).toBe(shared ? null : ADMIN.email);
    },
  );
});

describe.skipIf(!postgresUrl)('a gateway on PostgreSQL', () => {
  it('closes its pub/sub connections when it stops', async () => {
    const gateway = await startGateway({ backend: 'postgres' });
    try {
      // The NOTIFY connection opens with the first event: signing in publishes none, a sign-out does.
      const admin = await bootstrapAdmin(gateway);
      await admin.gql(LogOutDocument);
      expect(await pubsubBackends(gateway.databaseUrl)).toEqual([
        'portico-pubsub-listen',
        'portico-pubsub-notify',
      ]);
      await gateway.stop();
      await pubsubBackendsGone(gateway.databaseUrl);
    } finally {
      await gateway.close();
    }
  });
});
