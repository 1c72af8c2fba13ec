import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { eventually, freePort, redisUrl, startPrivateRedis } from '../../test/harness.ts';
import { brokerContract, captureLog, recordAll } from '../../test/pubsub.ts';
import { CONNECT_TIMEOUT_MS } from './brokered.ts';
import { openRedisPubSub } from './redis.ts';

describe.skipIf(!redisUrl)('Redis pub/sub', () => {
  // Redis channels are server-wide: a prefix of its own isolates this run.
  const prefix = `portico-test-${randomBytes(6).toString('hex')}`;
  let admin: Redis;
  let observer: Redis;
  const observed: string[] = [];
  beforeAll(async () => {
    admin = new Redis(redisUrl!);
    // An independent subscriber, to know what Redis delivered while an instance was away.
    observer = new Redis(redisUrl!);
    observer.on('message', (_channel: string, message: string) => observed.push(message));
    await observer.subscribe(`${prefix}:user.changed`);
  });
  afterAll(async () => {
    await observer?.quit();
    await admin?.quit();
  });

  const { open, proxy } = brokerContract({
    url: redisUrl!,
    open: (name, log, options = {}) =>
      openRedisPubSub({
        url: options.url ?? redisUrl!,
        log,
        prefix,
        clientName: `${prefix}-${name}`,
        heartbeat: options.heartbeat,
      }),
  });

  /** Redis's id of instance `name`'s subscriber connection. */
  const subscriberId = async (name: string) => {
    const clients = (await admin.client('LIST')) as string;
    const line = clients.split('\n').find((entry) => entry.includes(` name=${prefix}-${name}-subscribe `));
    return line?.match(/^id=(\d+)/)?.[1];
  };

  it('resubscribes after its subscriber connection is killed, reports a gap, and loses what was sent meanwhile', async () => {
    // `a` goes through a proxy that can refuse reconnections, so it surely misses the event below.
    const { proxy: gate, url } = await proxy();
    const a = await open('a', { url });
    const b = await open('b');
    const aReceived = recordAll(a.pubsub);
    await a.pubsub.ready();
    b.pubsub.publish('user.changed', { userId: 'before' });
    await eventually(() => aReceived.length === 1, 'the event before');
    const id = await subscriberId('a');
    expect(id).toBeDefined();

    gate.refusing = true;
    expect(await admin.client('KILL', 'ID', id!)).toBe(1);
    await eventually(() => gate.refused > 0, 'a refused reconnection');
    b.pubsub.publish('user.changed', { userId: 'while disconnected' });
    await eventually(() => observed.some((message) => message.includes('while disconnected')), 'the PUBLISH');
    gate.refusing = false;
    await eventually(() => a.gaps.count === 1, 'the gap');
    expect(await subscriberId('a')).not.toBe(id);

    b.pubsub.publish('user.changed', { userId: 'after' });
    await eventually(() => aReceived.length === 2, 'the event after');
    expect(aReceived.map(([, payload]) => payload)).toEqual([{ userId: 'before' }, { userId: 'after' }]);
    expect(b.gaps.count).toBe(0);
  });

  it('keeps publish instant while Redis is paused (SIGSTOP); events flow again once it resumes', async () => {
    // Its own server: pausing the shared one would stall the other test files.
    const redis = await startPrivateRedis();
    onTestFinished(() => redis.stop());
    const a = await open('a', { url: redis.url });
    const b = await open('b', { url: redis.url });
    const aReceived = recordAll(a.pubsub);
    const bReceived = recordAll(b.pubsub);
    await Promise.all([a.pubsub.ready(), b.pubsub.ready()]);
    const { pid } = redis;
    process.kill(pid, 'SIGSTOP');
    let publishMs: number;
    try {
      const started = performance.now();
      for (let n = 0; n < 100; n++) b.pubsub.publish('user.changed', { userId: `paused-${n}` });
      a.pubsub.publish('user.changed', { userId: 'from a, paused' });
      publishMs = performance.now() - started;
      await sleep(2000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(publishMs).toBeLessThan(100);
    // Local listeners did not wait for Redis.
    expect(aReceived).toEqual([['user.changed', { userId: 'from a, paused' }]]);

    // A pause shorter than the send timeout loses nothing: the sends were waiting on their sockets.
    await eventually(() => aReceived.length === 101 && bReceived.length === 101, 'the paused events');
    b.pubsub.publish('user.changed', { userId: 'resumed' });
    await eventually(() => aReceived.length === 102, 'an event after the pause');
    expect(aReceived.at(-1)).toEqual(['user.changed', { userId: 'resumed' }]);
    expect(a.gaps.count + b.gaps.count).toBe(0);
  });

  it('fails to start with an error naming REDIS_URL when Redis is not there', async () => {
    const { log } = captureLog();
    const started = Date.now();
    await expect(
      openRedisPubSub({ url: `redis://127.0.0.1:${await freePort()}`, log, prefix }),
    ).rejects.toThrow(/Cannot connect to Redis \(REDIS_URL\) for the pub\/sub: .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('fails to start within the connect timeout when the server never answers', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as { port: number };
      const { log } = captureLog();
      const started = Date.now();
      await expect(openRedisPubSub({ url: `redis://127.0.0.1:${port}`, log, prefix })).rejects.toThrow(
        /REDIS_URL/,
      );
      expect(Date.now() - started).toBeLessThan(CONNECT_TIMEOUT_MS + 1000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});
