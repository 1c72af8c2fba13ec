// A start that fails half-way leaves nothing open. Its own file: a process builds one schema,
// and this module set (with a module that cannot start) is not the other suites'.
import { describe, expect, it } from 'vitest';
import { defineModule } from '../src/index.ts';
import { createTestDatabase, freePort, startGateway } from './harness.ts';
import { pubsubBackendsGone } from './pubsub.ts';

const postgresUrl = process.env.PORTICO_TEST_POSTGRES_URL;

const failing = defineModule({
  name: 'fails-to-start',
  setup: () => ({
    start() {
      throw new Error('cannot start');
    },
  }),
});

describe('a gateway that cannot start', () => {
  it.skipIf(!postgresUrl)('closes its pub/sub when a module fails to start', async () => {
    const database = await createTestDatabase('postgres', '');
    try {
      await expect(startGateway({ databaseUrl: database.url, modules: [failing] })).rejects.toThrow(
        'cannot start',
      );
      await pubsubBackendsGone(database.url);
    } finally {
      await database.drop();
    }
  });

  it('names REDIS_URL when Redis cannot be reached', async () => {
    await expect(
      startGateway({ env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}` }, modules: [failing] }),
    ).rejects.toThrow(/Cannot connect to Redis \(REDIS_URL\) for the pub\/sub: .*ECONNREFUSED/);
  });
});
