import type { Histogram, MetricValue } from 'prom-client';
import type { Clock, Runtime } from '../../src/index.ts';

/** What the overview charts, over one sampling interval. Rates are per second; latencies in seconds. */
export interface OverviewSample {
  /** When the interval ended. */
  at: Date;
  /** HTTP requests answered, every route. */
  requestsPerSecond: number;
  /** GraphQL errors answered, whatever their code. */
  graphqlErrorsPerSecond: number;
  /** HTTP answers with a 5xx status, every route. */
  serverErrorsPerSecond: number;
  /** Null when no request was answered in the interval. */
  latencyP50Seconds: number | null;
  latencyP99Seconds: number | null;
  /** Open at the end of the interval. */
  webSocketSubscriptions: number;
  sseSubscriptions: number;
  /** Null when no event came from another instance in the interval. */
  pubsubLagP99Seconds: number | null;
}

/** A histogram's buckets, summed over its label sets: cumulative counts by upper bound, ascending. */
export type Buckets = { le: number; count: number }[];

/** The counters as read at one moment. */
interface Reading {
  /** Monotonic milliseconds (performance.now), for the interval's length. */
  at: number;
  requests: number;
  serverErrors: number;
  graphqlErrors: number;
  latency: Buckets;
  lag: Buckets;
  subscriptions: Map<string, number>;
}

/**
 * The q-quantile of the observations in `buckets`, as Prometheus' histogram_quantile computes it:
 * the bucket holding the q·count-th observation, interpolated linearly within it (the first bucket
 * starts at 0); past the last finite bound, that bound. Null without observations.
 */
export function quantile(q: number, buckets: Buckets): number | null {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  const index = buckets.findIndex((bucket) => bucket.count >= rank);
  const bucket = buckets[index]!;
  const below = buckets[index - 1];
  if (bucket.le === Number.POSITIVE_INFINITY) return below ? below.le : null;
  const start = below?.le ?? 0;
  const before = below?.count ?? 0;
  return start + (bucket.le - start) * ((rank - before) / (bucket.count - before));
}

/** What a counter gained since `before`; after a reset (it went down), all it holds now. */
const gained = (now: number, before: number) => (now >= before ? now - before : now);

/** The observations made between two readings of a histogram's buckets. */
export function bucketDelta(now: Buckets, before: Buckets): Buckets {
  const reset = now.some((bucket, i) => bucket.count < (before[i]?.count ?? 0));
  return reset
    ? now
    : now.map((bucket, i) => ({ le: bucket.le, count: bucket.count - (before[i]?.count ?? 0) }));
}

const sum = (values: MetricValue<string>[]) => values.reduce((total, { value }) => total + value, 0);

async function bucketsOf(histogram: Histogram<string>): Promise<Buckets> {
  const byBound = new Map<number, number>();
  for (const { metricName, labels, value } of (await histogram.get()).values) {
    if (!metricName?.endsWith('_bucket')) continue;
    const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
    byBound.set(le, (byBound.get(le) ?? 0) + value);
  }
  return [...byBound].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

export interface SamplerOptions {
  /** How many samples it keeps (the newest). */
  capacity: number;
  /** Stamps the samples. */
  clock: Clock;
  /** Monotonic milliseconds, for the intervals' lengths (default: performance.now). */
  monotonic?: () => number;
}

/**
 * Samples a gateway's own counters (`runtime.metrics`, read with prom-client's `get()`, never
 * through GET /metrics): each `read()` after the first turns what changed since the one before
 * into rates and quantiles, keeps the newest `capacity` samples and hands each to the listeners.
 */
export class CounterSampler {
  readonly #metrics: Runtime['metrics'];
  readonly #options: Required<SamplerOptions>;
  readonly #history: OverviewSample[] = [];
  readonly #listeners = new Set<(sample: OverviewSample) => void>();
  #previous: Reading | undefined;

  constructor(metrics: Runtime['metrics'], options: SamplerOptions) {
    this.#metrics = metrics;
    this.#options = { monotonic: () => performance.now(), ...options };
  }

  /** The samples kept, oldest first. */
  get history(): readonly OverviewSample[] {
    return this.#history;
  }

  /** Calls `listener` with each new sample until the returned function is called. */
  onSample(listener: (sample: OverviewSample) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Reads the counters; returns the sample since the previous read (none on the first). */
  async read(): Promise<OverviewSample | null> {
    const now = await this.#reading();
    const before = this.#previous;
    this.#previous = now;
    if (!before) return null;
    const seconds = (now.at - before.at) / 1000;
    if (seconds <= 0) return null;
    const latency = bucketDelta(now.latency, before.latency);
    const sample: OverviewSample = {
      at: new Date(this.#options.clock.now()),
      requestsPerSecond: gained(now.requests, before.requests) / seconds,
      graphqlErrorsPerSecond: gained(now.graphqlErrors, before.graphqlErrors) / seconds,
      serverErrorsPerSecond: gained(now.serverErrors, before.serverErrors) / seconds,
      latencyP50Seconds: quantile(0.5, latency),
      latencyP99Seconds: quantile(0.99, latency),
      webSocketSubscriptions: now.subscriptions.get('websocket') ?? 0,
      sseSubscriptions: now.subscriptions.get('sse') ?? 0,
      pubsubLagP99Seconds: quantile(0.99, bucketDelta(now.lag, before.lag)),
    };
    this.#history.push(sample);
    if (this.#history.length > this.#options.capacity) this.#history.shift();
    for (const listener of this.#listeners) listener(sample);
    return sample;
  }

  async #reading(): Promise<Reading> {
    const metrics = this.#metrics;
    const [requests, graphqlErrors, subscriptions, latency, lag] = await Promise.all([
      metrics.httpRequests.get(),
      metrics.errors.get(),
      metrics.subscriptions.get(),
      bucketsOf(metrics.httpDuration),
      bucketsOf(metrics.pubsubLag),
    ]);
    const open = new Map<string, number>();
    for (const { labels, value } of subscriptions.values) {
      const transport = String(labels.transport);
      open.set(transport, (open.get(transport) ?? 0) + value);
    }
    return {
      at: this.#options.monotonic(),
      requests: sum(requests.values),
      serverErrors: sum(requests.values.filter(({ labels }) => String(labels.status).startsWith('5'))),
      graphqlErrors: sum(graphqlErrors.values),
      latency,
      lag,
      subscriptions: open,
    };
  }
}
