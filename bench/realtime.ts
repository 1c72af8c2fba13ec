/**
 * `npm run bench:realtime`: revocation pushed to live subscribers. See BENCHMARKS.md, "Realtime".
 *
 * 1. Fan-out, one instance (SQLite), once over SSE and once over graphql-ws: BENCH_SUBSCRIBERS
 *    (default 5000) connections of one browser session each subscribe to `sessionRevoked`; one
 *    logout then reaches all of them. Reported: time from sending the logout to the last
 *    delivery (goal < 1 s), and the gateway's RSS growth per open subscription.
 * 2. Across instances: two gateway processes on one PostgreSQL database (PORTICO_TEST_POSTGRES_URL,
 *    default postgres://postgres@127.0.0.1:5432/postgres), through LISTEN/NOTIFY and through Redis
 *    (REDIS_URL, default redis://127.0.0.1:6379): BENCH_SAMPLES (default 200) times, a session
 *    subscribed on B is logged out on A; reported: p50/p99 from the logout to the delivery on B
 *    (goal p99 < 2 s).
 * Exits non-zero when a delivery is missing; a missed goal is reported, not fatal.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';
import { type Instance, startCluster } from '../test/instances.ts';

const SUBSCRIBERS = positive('BENCH_SUBSCRIBERS', 5000);
const SAMPLES = positive('BENCH_SAMPLES', 200);
process.env.PORTICO_TEST_POSTGRES_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SUBSCRIBE = JSON.stringify({ query: 'subscription { sessionRevoked { reason } }' });
// Connections are opened this many at a time, as a crowd of browsers would reconnect.
const OPEN_CONCURRENCY = 200;

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

const MIB = 1024 * 1024;

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function signUp(instance: Instance, email: string) {
  const client = instance.client();
  const result = await client.gql(
    'mutation ($email: String!) { signUp(input: { email: $email, password: "bench horse battery staple" }) { user { id } } }',
    { email },
  );
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return client;
}

/** A live subscription: `subscribed` settles once the server runs it, `delivered` on its first event. */
interface Subscriber {
  subscribed: Promise<void>;
  delivered: Promise<number>;
}

const sseAgent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });

function sseSubscriber(url: string, cookie: string): Subscriber {
  let onSubscribed!: () => void;
  let onDelivered!: (at: number) => void;
  let fail!: (error: Error) => void;
  const subscribed = new Promise<void>((resolve, reject) => {
    onSubscribed = resolve;
    fail = reject;
  });
  const delivered = new Promise<number>((resolve) => {
    onDelivered = resolve;
  });
  const req = request(`${url}/graphql`, {
    method: 'POST',
    agent: sseAgent,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', cookie },
  });
  req.on('response', (response) => {
    if (response.statusCode !== 200) return fail(new Error(`SSE answered ${response.statusCode}`));
    // Yoga answers once the subscription runs.
    onSubscribed();
    response.on('data', (chunk: Buffer) => {
      if (chunk.includes('event: next')) onDelivered(performance.now());
    });
  });
  req.on('error', fail);
  req.end(SUBSCRIBE);
  return { subscribed, delivered };
}

function wsSubscriber(url: string, cookie: string): Subscriber {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', {
    headers: { cookie },
  });
  const delivered = new Promise<number>((resolve) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string };
      if (message.type === 'next') resolve(performance.now());
    });
  });
  const subscribed = new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string };
      if (message.type !== 'connection_ack') return;
      socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: JSON.parse(SUBSCRIBE) }));
      resolve();
    });
  });
  return { subscribed, delivered };
}

async function fanOut(transport: 'sse' | 'ws') {
  const cluster = await startCluster({ count: 1, backend: 'sqlite', config: { signup: 'open' } });
  try {
    const [gateway] = cluster.instances as [Instance];
    const user = await signUp(gateway, `fanout-${transport}@example.com`);
    const pid = gateway.process.pid!;
    const before = await rssOf(pid);
    const subscribers: Subscriber[] = [];
    for (let i = 0; i < SUBSCRIBERS; i += OPEN_CONCURRENCY) {
      const batch = Array.from({ length: Math.min(OPEN_CONCURRENCY, SUBSCRIBERS - i) }, () =>
        (transport === 'sse' ? sseSubscriber : wsSubscriber)(gateway.url, user.cookieHeader),
      );
      await Promise.all(batch.map((subscriber) => subscriber.subscribed));
      subscribers.push(...batch);
    }
    // A WebSocket subscribe has no acknowledgement: give the last ones time to be running.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const after = await rssOf(pid);
    const started = performance.now();
    const logout = await user.gql('mutation { logOut }');
    if (logout.errors) throw new Error(JSON.stringify(logout.errors));
    const arrivals = (
      await Promise.race([
        Promise.all(subscribers.map((subscriber) => subscriber.delivered)),
        new Promise<never>((_, reject) =>
          setTimeout(
            () => reject(new Error(`${transport}: not every subscriber got the event within 30 s`)),
            30_000,
          ),
        ),
      ])
    )
      .map((at) => at - started)
      .sort((x, y) => x - y);
    return {
      transport,
      subscribers: SUBSCRIBERS,
      firstMs: arrivals[0]!,
      p50Ms: percentile(arrivals, 50),
      lastMs: arrivals.at(-1)!,
      rssPerSubscriberKiB: (after - before) / SUBSCRIBERS / 1024,
      rssGrowthMiB: (after - before) / MIB,
    };
  } finally {
    sseAgent.destroy();
    await cluster.close();
  }
}

async function acrossInstances(channel: 'postgres' | 'redis') {
  const cluster = await startCluster({
    env: channel === 'redis' ? { REDIS_URL } : {},
    config: { signup: 'open', rateLimits: { signUps: 1000 } },
  });
  try {
    const [a, b] = cluster.instances as [Instance, Instance];
    await signUp(a, `cross-${channel}@example.com`);
    const latencies: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const session = a.client();
      const login = await session.gql(
        'mutation ($email: String!) { logIn(email: $email, password: "bench horse battery staple") { user { id } } }',
        { email: `cross-${channel}@example.com` },
      );
      if (login.errors) throw new Error(JSON.stringify(login.errors));
      const subscriber = wsSubscriber(b.url, session.cookieHeader);
      await subscriber.subscribed;
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = performance.now();
      await session.gql('mutation { logOut }');
      latencies.push((await subscriber.delivered) - started);
    }
    latencies.sort((x, y) => x - y);
    return {
      channel,
      samples: SAMPLES,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies.at(-1)!,
    };
  } finally {
    await cluster.close();
  }
}

const round = (value: number) => Math.round(value * 10) / 10;
const fanOuts = [await fanOut('sse'), await fanOut('ws')];
console.log('\nFan-out: one logout to every subscriber of the session (one instance, SQLite)');
console.table(
  fanOuts.map((r) => ({
    transport: r.transport,
    subscribers: r.subscribers,
    'first ms': round(r.firstMs),
    'p50 ms': round(r.p50Ms),
    'last ms': round(r.lastMs),
    'goal last < 1000 ms': r.lastMs < 1000 ? 'met' : 'missed',
    'RSS KiB/subscriber': round(r.rssPerSubscriberKiB),
    'RSS growth MiB': round(r.rssGrowthMiB),
  })),
);
const crossings = [await acrossInstances('postgres'), await acrossInstances('redis')];
console.log('\nAcross instances: logout on A to delivery on B (graphql-ws)');
console.table(
  crossings.map((r) => ({
    channel: r.channel === 'postgres' ? 'PostgreSQL LISTEN/NOTIFY' : 'Redis',
    samples: r.samples,
    'p50 ms': round(r.p50Ms),
    'p99 ms': round(r.p99Ms),
    'max ms': round(r.maxMs),
    'goal p99 < 2000 ms': r.p99Ms < 2000 ? 'met' : 'missed',
  })),
);
process.exit(0);
