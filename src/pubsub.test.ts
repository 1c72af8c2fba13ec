import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, eventually, redisUrl, type TestDatabase } from '../test/harness.ts';
import { captureLog, samplePayloads } from '../test/pubsub.ts';
import { MAX_BUFFERED_EVENTS } from './pubsub/fanout.ts';
import { createLocalPubSub } from './pubsub/local.ts';
import { openPubSub, pubSubAdapterFor } from './pubsub/open.ts';
import type { PubSub } from './pubsub.ts';

const postgresUrl = process.env.PORTICO_TEST_POSTGRES_URL;

describe('pubSubAdapterFor', () => {
  const sqlite = 'sqlite:/tmp/portico.sqlite';
  const postgres = 'postgres://portico@db.example/portico';

  it('takes Redis when REDIS_URL is set, else PostgreSQL when the system database is one, else in process', () => {
    expect(pubSubAdapterFor({ redisUrl: 'redis://cache', systemDatabaseUrl: postgres })).toBe('redis');
    expect(pubSubAdapterFor({ redisUrl: 'redis://cache', systemDatabaseUrl: sqlite })).toBe('redis');
    expect(pubSubAdapterFor({ redisUrl: undefined, systemDatabaseUrl: postgres })).toBe('postgresql');
    expect(pubSubAdapterFor({ redisUrl: undefined, systemDatabaseUrl: sqlite })).toBe('local');
  });

  it('goes through the primary in a worker of `start --workers` when there is no broker', () => {
    expect(pubSubAdapterFor({ redisUrl: undefined, systemDatabaseUrl: sqlite, worker: 2 })).toBe('ipc');
    expect(pubSubAdapterFor({ redisUrl: undefined, systemDatabaseUrl: postgres, worker: 2 })).toBe(
      'postgresql',
    );
    expect(pubSubAdapterFor({ redisUrl: 'redis://cache', systemDatabaseUrl: sqlite, worker: 2 })).toBe(
      'redis',
    );
  });
});

describe('the in-process pub/sub', () => {
  it('delivers to listeners during publish; a failing listener is logged and stops no other', () => {
    const { log, lines } = captureLog();
    const pubsub = createLocalPubSub(log);
    const heard: string[] = [];
    pubsub.on('user.changed', () => {
      throw new Error('listener bug');
    });
    pubsub.on('user.changed', ({ userId }) => heard.push(userId));
    expect(() => pubsub.publish('user.changed', { userId: 'u1' })).not.toThrow();
    expect(heard).toEqual(['u1']);
    expect(lines).toMatchObject([{ level: 50, topic: 'user.changed', err: { message: 'listener bug' } }]);
  });

  it('removes one registration per disposer, even of the same function', () => {
    const pubsub = createLocalPubSub(captureLog().log);
    const heard: string[] = [];
    const listener = ({ userId }: { userId: string }) => heard.push(userId);
    const off = pubsub.on('user.changed', listener);
    pubsub.on('user.changed', listener);
    off();
    off();
    pubsub.publish('user.changed', { userId: 'u1' });
    expect(heard).toEqual(['u1']);
  });

  it('subscribe() holds events from the call on, until return(); close() ends the loops', async () => {
    const pubsub = createLocalPubSub(captureLog().log);
    const events = pubsub.subscribe('lease.released')[Symbol.asyncIterator]();
    pubsub.publish('lease.released', { key: 'k1' });
    pubsub.publish('lease.released', { key: 'k2' });
    expect(await events.next()).toEqual({ value: { key: 'k1' }, done: false });
    expect(await events.next()).toEqual({ value: { key: 'k2' }, done: false });
    await events.return?.();
    expect(await events.next()).toEqual({ value: undefined, done: true });

    const loop = (async () => {
      const seen: unknown[] = [];
      for await (const event of pubsub.subscribe('lease.released')) seen.push(event);
      return seen;
    })();
    pubsub.publish('lease.released', { key: 'k3' });
    await pubsub.close();
    expect(await loop).toEqual([{ key: 'k3' }]);
  });

  it(`keeps the newest ${MAX_BUFFERED_EVENTS} events of a subscriber that does not read, and says so once`, async () => {
    const { log, lines } = captureLog();
    const pubsub = createLocalPubSub(log);
    const events = pubsub.subscribe('lease.released')[Symbol.asyncIterator]();
    for (let n = 0; n < MAX_BUFFERED_EVENTS + 5; n++) pubsub.publish('lease.released', { key: `k${n}` });
    expect(await events.next()).toEqual({ value: { key: 'k5' }, done: false });
    expect(lines.filter((line) => line.level === 40 && /fell behind/.test(line.msg))).toHaveLength(1);
  });

  it('never reports a gap; ready() resolves at once', async () => {
    const pubsub = createLocalPubSub(captureLog().log);
    let gaps = 0;
    pubsub.onGap(() => gaps++);
    pubsub.on('user.changed', () => {});
    await pubsub.ready();
    await pubsub.close();
    expect(gaps).toBe(0);
  });
});

describe('openPubSub', () => {
  let database: TestDatabase | undefined;
  const opened: PubSub[] = [];
  beforeAll(async () => {
    if (postgresUrl) database = await createTestDatabase('postgres', tmpdir());
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((pubsub) => pubsub.close()));
  });
  afterAll(() => database?.drop());

  /**
   * Two instances opened from `env`, as two gateways would, and whether the second hears the
   * first. Its own session id: on the default Redis channels, other test files' gateways talk too.
   */
  const secondHearsFirst = async (env: Parameters<typeof openPubSub>[0]['env']) => {
    const { log } = captureLog();
    const [a, b] = [await openPubSub({ env, log }), await openPubSub({ env, log })];
    opened.push(a, b);
    const sessionId = randomUUID();
    let heard = false;
    b.on('session.revoked', (payload) => {
      heard ||= payload.sessionId === sessionId;
    });
    await b.ready();
    a.publish('session.revoked', { ...samplePayloads['session.revoked'](1), sessionId });
    return () => heard;
  };

  it.skipIf(!postgresUrl)('opens LISTEN/NOTIFY on a PostgreSQL system database', async () => {
    const heard = await secondHearsFirst({ redisUrl: undefined, systemDatabaseUrl: database!.url });
    await eventually(heard, 'the event');
  });

  it.skipIf(!redisUrl)('opens Redis when REDIS_URL is set, whatever the database', async () => {
    const heard = await secondHearsFirst({
      redisUrl,
      systemDatabaseUrl: 'sqlite:/nonexistent/portico.sqlite',
    });
    await eventually(heard, 'the event');
  });

  it('stays in process on SQLite: two instances do not hear each other', async () => {
    const heard = await secondHearsFirst({ redisUrl: undefined, systemDatabaseUrl: 'sqlite::memory:' });
    await sleep(100);
    expect(heard()).toBe(false);
  });
});
