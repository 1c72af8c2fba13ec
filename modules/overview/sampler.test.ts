import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../src/telemetry/metrics.ts';
import { type Buckets, bucketDelta, CounterSampler, quantile } from './sampler.ts';

const INF = Number.POSITIVE_INFINITY;

describe('quantile', () => {
  // The values Prometheus' histogram_quantile gives for the same buckets.
  const buckets: Buckets = [
    { le: 0.1, count: 50 },
    { le: 0.5, count: 90 },
    { le: 1, count: 100 },
    { le: INF, count: 100 },
  ];

  it('interpolates linearly within the bucket that holds the rank', () => {
    // Rank 50 is the first bucket's last observation: its upper bound.
    expect(quantile(0.5, buckets)).toBeCloseTo(0.1);
    // Rank 25, halfway through the first bucket, which starts at 0.
    expect(quantile(0.25, buckets)).toBeCloseTo(0.05);
    // Rank 70: 20 of the second bucket's 40, between 0.1 and 0.5.
    expect(quantile(0.7, buckets)).toBeCloseTo(0.3);
    // Rank 99: 9 of the third bucket's 10, between 0.5 and 1.
    expect(quantile(0.99, buckets)).toBeCloseTo(0.95);
  });

  it('answers the last finite bound for ranks in the +Inf bucket, and null without observations', () => {
    const slow: Buckets = [
      { le: 0.1, count: 1 },
      { le: 1, count: 1 },
      { le: INF, count: 10 },
    ];
    expect(quantile(0.99, slow)).toBe(1);
    expect(
      quantile(
        0.5,
        buckets.map(({ le }) => ({ le, count: 0 })),
      ),
    ).toBeNull();
  });

  it('takes what was observed between two readings, or everything after a reset', () => {
    const before: Buckets = [
      { le: 0.1, count: 10 },
      { le: INF, count: 12 },
    ];
    const now: Buckets = [
      { le: 0.1, count: 10 },
      { le: INF, count: 20 },
    ];
    expect(bucketDelta(now, before)).toEqual([
      { le: 0.1, count: 0 },
      { le: INF, count: 8 },
    ]);
    expect(bucketDelta(before, now)).toEqual(before);
  });
});

describe('the counter sampler', () => {
  function setUp(capacity = 300) {
    const metrics = new GatewayMetrics();
    let monotonic = 0;
    const sampler = new CounterSampler(metrics, {
      capacity,
      clock: { now: () => 0 },
      monotonic: () => monotonic,
    });
    return { metrics, sampler, elapse: (ms: number) => (monotonic += ms) };
  }

  it('turns two readings of the counters into rates, quantiles and open subscriptions', async () => {
    const { metrics, sampler, elapse } = setUp();
    // Counts from before the first reading are no part of any sample.
    metrics.httpRequests.inc({ method: 'POST', route: '/graphql', status: '200' }, 1000);
    expect(await sampler.read()).toBeNull();

    for (let i = 0; i < 18; i++) {
      metrics.httpRequests.inc({ method: 'POST', route: '/graphql', status: '200' });
      metrics.httpDuration.observe({ method: 'POST', route: '/graphql' }, 0.002);
    }
    metrics.httpRequests.inc({ method: 'GET', route: '/blobs/:id', status: '503' });
    metrics.httpDuration.observe({ method: 'GET', route: '/blobs/:id' }, 0.3);
    metrics.httpRequests.inc({ method: 'GET', route: '/ready', status: 200 });
    metrics.httpDuration.observe({ method: 'GET', route: '/ready' }, 0.0005);
    metrics.errors.inc({ code: 'FORBIDDEN' }, 3);
    metrics.errors.inc({ code: 'BAD_USER_INPUT' });
    metrics.subscriptions.inc({ transport: 'websocket' }, 3);
    metrics.subscriptions.inc({ transport: 'sse' });
    metrics.pubsubLag.observe({ adapter: 'redis' }, 0.004);
    elapse(2000);
    const sample = await sampler.read();

    expect(sample).toMatchObject({
      requestsPerSecond: 10,
      serverErrorsPerSecond: 0.5,
      graphqlErrorsPerSecond: 2,
      webSocketSubscriptions: 3,
      sseSubscriptions: 1,
    });
    // 20 requests: rank 10 is among the 18 in (0.001, 0.0025], above the one below 0.001;
    // rank 19.8 is the slow one, alone in (0.25, 0.5].
    expect(sample!.latencyP50Seconds).toBeCloseTo(0.001 + 0.0015 * (9 / 18));
    expect(sample!.latencyP99Seconds).toBeCloseTo(0.25 + 0.25 * 0.8);
    // One event: every quantile is within its bucket (0.0025, 0.005].
    expect(sample!.pubsubLagP99Seconds).toBeCloseTo(0.0025 + 0.0025 * 0.99);
    expect(sampler.history).toEqual([sample]);
  });

  it('samples an idle interval as zero rates and no latency', async () => {
    const { metrics, sampler, elapse } = setUp();
    metrics.httpDuration.observe({ method: 'POST', route: '/graphql' }, 0.002);
    await sampler.read();
    elapse(1000);
    expect(await sampler.read()).toMatchObject({
      requestsPerSecond: 0,
      serverErrorsPerSecond: 0,
      graphqlErrorsPerSecond: 0,
      latencyP50Seconds: null,
      latencyP99Seconds: null,
      pubsubLagP99Seconds: null,
      webSocketSubscriptions: 0,
      sseSubscriptions: 0,
    });
  });

  it('counts from zero again after the counters were reset', async () => {
    const { metrics, sampler, elapse } = setUp();
    metrics.httpRequests.inc({ method: 'POST', route: '/graphql', status: '200' }, 100);
    await sampler.read();
    metrics.registry.resetMetrics();
    metrics.httpRequests.inc({ method: 'POST', route: '/graphql', status: '200' }, 4);
    elapse(1000);
    expect((await sampler.read())?.requestsPerSecond).toBe(4);
  });

  it('keeps the newest samples and tells listeners of each', async () => {
    const { metrics, sampler, elapse } = setUp(3);
    const heard: number[] = [];
    const off = sampler.onSample((sample) => heard.push(sample.requestsPerSecond));
    await sampler.read();
    for (let i = 1; i <= 5; i++) {
      metrics.httpRequests.inc({ method: 'POST', route: '/graphql', status: '200' }, i);
      elapse(1000);
      await sampler.read();
    }
    expect(sampler.history.map((sample) => sample.requestsPerSecond)).toEqual([3, 4, 5]);
    expect(heard).toEqual([1, 2, 3, 4, 5]);
    off();
    elapse(1000);
    await sampler.read();
    expect(heard).toHaveLength(5);
  });
});
