// Shared by the pub/sub adapter tests: captured logs, a TCP proxy that can go silent, and the
// behaviour every broker adapter must have, run against real PostgreSQL and Redis.
import { connect, createServer, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import type { Logger } from '../src/logger.ts';
import type { Heartbeat } from '../src/pubsub/brokered.ts';
import type { PubSub, TopicName, Topics } from '../src/pubsub.ts';
import { MAX_MESSAGE_BYTES } from '../src/pubsub.ts';
import type { LogLine } from './harness.ts';
import { eventually } from './harness.ts';

export interface CapturedLog {
  log: Logger;
  lines: LogLine[];
}

/** A logger whose lines the test can read. */
export function captureLog(): CapturedLog {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

/**
 * A payload for every topic the built-in modules declare. The mapped type makes a topic added
 * later fail type-checking here until the tests cover it.
 */
export const samplePayloads: { [T in TopicName]: (n: number) => Topics[T] } = {
  'store.changed': (n) => ({ by: `instance-${n}`, action: n % 2 === 0 ? 'switch' : 'reconnect' }),
  'session.created': (n) => ({
    sessionId: `session-${n}`,
    userId: `user-${n}`,
    at: new Date(n).toISOString(),
  }),
  'session.revoked': (n) => ({
    sessionId: `session-${n}`,
    userId: `user-${n}`,
    reason: 'REVOKED',
    at: new Date(n).toISOString(),
  }),
  'user.changed': (n) => ({ userId: `user-${n}` }),
  'apiKey.revoked': (n) => ({
    apiKeyId: `key-${n}`,
    userId: `user-${n}`,
    reason: 'REVOKED',
    at: new Date(n).toISOString(),
  }),
  'document.changed': (n) => ({
    kind: 'DELETED',
    collection: 'notes',
    id: `doc-${n}`,
    version: n,
    ownerId: null,
  }),
  'lease.released': (n) => ({ key: `lease-${n}` }),
};

export const topics = Object.keys(samplePayloads) as TopicName[];

type Received = [topic: string, payload: unknown];

/** Listens to every topic, recording `[topic, payload]` in arrival order. */
export function recordAll(pubsub: PubSub): Received[] {
  const received: Received[] = [];
  for (const topic of topics) pubsub.on(topic, (payload) => received.push([topic, payload]));
  return received;
}

/** Publishes `count` events on every topic, interleaved; returns them in publish order. */
export function publishAll(pubsub: PubSub, count: number, offset: number): Received[] {
  const published: Received[] = [];
  for (let n = offset; n < offset + count; n++) {
    for (const topic of topics) {
      const payload = samplePayloads[topic](n);
      pubsub.publish(topic, payload as never);
      published.push([topic, payload]);
    }
  }
  return published;
}

/** A `user.changed` payload whose message (the adapters' JSON envelope) is exactly `bytes` long. */
export function userChangedOfSize(bytes: number): Topics['user.changed'] {
  // The envelope's `from` is 16 characters (12 random bytes in base64url), its `at` 13 digits (epoch ms).
  const empty = JSON.stringify({
    topic: 'user.changed',
    from: 'x'.repeat(16),
    at: Date.now(),
    payload: { userId: '' },
  });
  return { userId: 'u'.repeat(bytes - Buffer.byteLength(empty)) };
}

/** The `application_name`s of the pub/sub's connections to a PostgreSQL database, sorted. */
export async function pubsubBackends(databaseUrl: string): Promise<string[]> {
  const admin = new pg.Client({ connectionString: process.env.PORTICO_TEST_POSTGRES_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ name: string }>(
      `select application_name as name from pg_stat_activity
       where datname = $1 and application_name like 'portico-pubsub-%' order by 1`,
      [new URL(databaseUrl).pathname.slice(1)],
    );
    return rows.map((row) => row.name);
  } finally {
    await admin.end();
  }
}

/** Fails unless the pub/sub's connections leave the database (backends exit shortly after their client). */
export async function pubsubBackendsGone(databaseUrl: string): Promise<void> {
  const deadline = Date.now() + 2000;
  let left = await pubsubBackends(databaseUrl);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(20);
    left = await pubsubBackends(databaseUrl);
  }
  expect(left).toEqual([]);
}

export interface SilenceableProxy {
  port: number;
  /** Connections open now stop carrying bytes either way, without closing: a peer gone silent. */
  silence(): void;
  /** While true, new connections are closed at once (and counted in `refused`). */
  refusing: boolean;
  /** Delay of every chunk, each way: a slow network. */
  latencyMs: number;
  refused: number;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to `target`; new connections go through even after `silence`. */
export async function startProxy(target: URL): Promise<SilenceableProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
    if (proxy.refusing) {
      proxy.refused++;
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    for (const socket of pair) socket.on('error', end).on('close', end);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => {
        if (proxy.latencyMs === 0) to.write(chunk);
        else setTimeout(() => to.write(chunk), proxy.latencyMs);
      });
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: SilenceableProxy = {
    port: (server.address() as { port: number }).port,
    refusing: false,
    refused: 0,
    latencyMs: 0,
    silence() {
      for (const pair of pairs) for (const socket of pair) socket.pause();
    },
    async close() {
      for (const pair of pairs) for (const socket of pair) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return proxy;
}

export interface OpenOptions {
  /** Overrides the broker URL (e.g. through a proxy). */
  url?: string;
  heartbeat?: Heartbeat;
}

export interface BrokerContract {
  /** The broker's URL, for the tests that reach it through a proxy (a slow link, a silent one). */
  url?: string;
  /**
   * False for a broker reached by no network connection (the workers' IPC: a pipe to the primary
   * process): the tests through a proxy do not apply.
   */
  network?: boolean;
  /** Opens an adapter instance as one gateway would, with its connections named after `name`. */
  open(name: string, log: Logger, options?: OpenOptions): Promise<PubSub>;
}

/**
 * The tests every broker adapter passes, registered in the caller's `describe`. Returns the
 * function that opens an instance closed after the test.
 */
export function brokerContract(contract: BrokerContract) {
  const opened: PubSub[] = [];
  const proxies: SilenceableProxy[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((pubsub) => pubsub.close()));
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  });
  const open = async (name: string, options?: OpenOptions) => {
    const captured = captureLog();
    const pubsub = await contract.open(name, captured.log, options);
    opened.push(pubsub);
    const gaps = { count: 0 };
    pubsub.onGap(() => gaps.count++);
    return { pubsub, lines: captured.lines, gaps };
  };

  /** Waits until each instance has the other's marker: everything sent before it was handled. */
  const roundTrip = async (a: PubSub, b: PubSub, aReceived: Received[], bReceived: Received[]) => {
    const marker = (key: string) => (entry: Received) =>
      entry[0] === 'lease.released' && (entry[1] as { key: string }).key === key;
    a.publish('lease.released', { key: 'marker-a' });
    await eventually(() => bReceived.some(marker('marker-a')), "b to get a's marker");
    b.publish('lease.released', { key: 'marker-b' });
    await eventually(() => aReceived.some(marker('marker-b')), "a to get b's marker");
  };

  it("delivers each instance's events on every topic to the other in publish order, and to itself once, at once", async () => {
    const a = await open('a');
    const b = await open('b');
    const aReceived = recordAll(a.pubsub);
    const bReceived = recordAll(b.pubsub);
    await Promise.all([a.pubsub.ready(), b.pubsub.ready()]);

    const fromA = publishAll(a.pubsub, 20, 0);
    expect(aReceived).toEqual(fromA);
    const fromB = publishAll(b.pubsub, 20, 1000);
    expect(bReceived).toEqual(fromB);

    const all = fromA.length + fromB.length;
    await eventually(() => aReceived.length >= all && bReceived.length >= all, "each other's events");
    // Then, whatever came back late (an instance's own events) would show before the markers.
    await roundTrip(a.pubsub, b.pubsub, aReceived, bReceived);
    const markers: Received[] = [
      ['lease.released', { key: 'marker-a' }],
      ['lease.released', { key: 'marker-b' }],
    ];
    // Own events came back through the broker too: the exact lists show they were skipped.
    expect(aReceived).toEqual([...fromA, ...fromB, ...markers]);
    expect(bReceived).toEqual([...fromB, ...fromA, ...markers]);
    expect(a.gaps.count + b.gaps.count).toBe(0);
  });

  it('subscribe() iterates events from the call on (ready() makes it certain), until return()', async () => {
    const a = await open('a');
    const b = await open('b');
    const events = b.pubsub.subscribe('document.changed');
    await b.pubsub.ready();
    // Published before the first next(): held for the iterator.
    for (let n = 0; n < 3; n++) a.pubsub.publish('document.changed', samplePayloads['document.changed'](n));
    const seen: unknown[] = [];
    for await (const event of events) {
      seen.push(event);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([0, 1, 2].map(samplePayloads['document.changed']));
    const iterator = events[Symbol.asyncIterator]();
    a.pubsub.publish('document.changed', samplePayloads['document.changed'](3));
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
  });

  it.skipIf(contract.network === false)(
    'ready() resolves once the broker listens: an event sent right after is not missed, even on a slow link',
    async () => {
      const { proxy: slow, url } = await proxy();
      const a = await open('a', { url });
      const b = await open('b');
      slow.latencyMs = 150;
      const aReceived: unknown[] = [];
      a.pubsub.on('apiKey.revoked', (payload) => aReceived.push(payload));
      const events = a.pubsub.subscribe('lease.released');
      await a.pubsub.ready();
      b.pubsub.publish('apiKey.revoked', samplePayloads['apiKey.revoked'](1));
      b.pubsub.publish('lease.released', samplePayloads['lease.released'](1));
      await eventually(() => aReceived.length === 1, 'the event on() listens to');
      const iterator = events[Symbol.asyncIterator]();
      expect(await iterator.next()).toEqual({ value: samplePayloads['lease.released'](1), done: false });
      await iterator.return?.();
    },
  );

  it("on()'s disposer stops that listener only, on that instance only", async () => {
    const a = await open('a');
    const b = await open('b');
    const stopped: unknown[] = [];
    const kept: Received[] = [];
    const aReceived = recordAll(a.pubsub);
    const off = b.pubsub.on('user.changed', (payload) => stopped.push(payload));
    b.pubsub.on('user.changed', (payload) => kept.push(['user.changed', payload]));
    const bReceived = recordAll(b.pubsub);
    await Promise.all([a.pubsub.ready(), b.pubsub.ready()]);

    a.pubsub.publish('user.changed', { userId: 'before' });
    await eventually(() => stopped.length === 1, 'the first event');
    off();
    a.pubsub.publish('user.changed', { userId: 'after' });
    await roundTrip(a.pubsub, b.pubsub, aReceived, bReceived);
    expect(stopped).toEqual([{ userId: 'before' }]);
    expect(kept.map(([, payload]) => payload)).toEqual([{ userId: 'before' }, { userId: 'after' }]);
  });

  it(`refuses and logs an event over ${MAX_MESSAGE_BYTES} bytes, for every listener; later events flow`, async () => {
    const a = await open('a');
    const b = await open('b');
    const aReceived = recordAll(a.pubsub);
    const bReceived = recordAll(b.pubsub);
    await Promise.all([a.pubsub.ready(), b.pubsub.ready()]);

    const tooLarge = userChangedOfSize(MAX_MESSAGE_BYTES + 1);
    const largest = userChangedOfSize(MAX_MESSAGE_BYTES);
    expect(() => a.pubsub.publish('user.changed', tooLarge)).not.toThrow();
    expect(aReceived).toEqual([]);
    const refusal = a.lines.find((line) => line.level === 50 && line.topic === 'user.changed');
    expect(refusal).toMatchObject({ bytes: MAX_MESSAGE_BYTES + 1, limit: MAX_MESSAGE_BYTES });
    expect(refusal?.msg).toContain('user.changed');

    // The largest allowed message is one the broker takes.
    a.pubsub.publish('user.changed', largest);
    a.pubsub.publish('user.changed', { userId: 'small' });
    await roundTrip(a.pubsub, b.pubsub, aReceived, bReceived);
    const changes = (received: Received[]) => received.filter(([topic]) => topic === 'user.changed');
    expect(changes(bReceived)).toEqual([
      ['user.changed', largest],
      ['user.changed', { userId: 'small' }],
    ]);
    expect(changes(aReceived)).toEqual(changes(bReceived));
    expect(a.lines.filter((line) => line.level >= 50)).toHaveLength(1);
  });

  it('close() sends what was published before it, ends subscriptions, and refuses later publishes', async () => {
    const a = await open('a');
    const b = await open('b');
    const bReceived = recordAll(b.pubsub);
    const subscription = (async () => {
      const seen: unknown[] = [];
      for await (const event of a.pubsub.subscribe('user.changed')) seen.push(event);
      return seen;
    })();
    await Promise.all([a.pubsub.ready(), b.pubsub.ready()]);

    a.pubsub.publish('user.changed', { userId: 'last' });
    await a.pubsub.close();
    expect(await subscription).toEqual([{ userId: 'last' }]);
    await eventually(() => bReceived.length === 1, 'the event published before close');
    expect(bReceived).toEqual([['user.changed', { userId: 'last' }]]);

    expect(() => a.pubsub.publish('user.changed', { userId: 'too late' })).not.toThrow();
    expect(a.lines.some((line) => line.level === 50 && /after close/.test(line.msg))).toBe(true);
  });

  it.skipIf(contract.network === false)(
    'replaces a subscriber connection that stops answering (heartbeat), then reports a gap',
    async () => {
      const { proxy: silenceable, url } = await proxy();
      const a = await open('a', { url, heartbeat: { intervalMs: 100, timeoutMs: 300 } });
      const b = await open('b');
      const aReceived = recordAll(a.pubsub);
      await a.pubsub.ready();
      // Pings that are answered change nothing.
      await sleep(500);
      expect(a.gaps.count).toBe(0);

      silenceable.silence();
      await eventually(() => a.gaps.count === 1, 'the gap', 10_000);
      expect(a.lines.some((line) => /stopped answering/.test(line.msg))).toBe(true);
      b.pubsub.publish('user.changed', { userId: 'after the gap' });
      await eventually(() => aReceived.length === 1, 'an event after the gap');
      expect(aReceived).toEqual([['user.changed', { userId: 'after the gap' }]]);
      expect(b.gaps.count).toBe(0);
    },
  );

  /** A proxy to the broker, closed after the test, and the URL through it. */
  const proxy = async () => {
    const started = await startProxy(new URL(contract.url!));
    proxies.push(started);
    const url = new URL(contract.url!);
    url.port = String(started.port);
    return { proxy: started, url: url.toString() };
  };

  return { open, proxy };
}
