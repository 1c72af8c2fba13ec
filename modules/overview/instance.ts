import { Repeater } from 'graphql-yoga';
import {
  type DatabaseHealth,
  databasesHealth,
  every,
  type ModuleInstance,
  type Runtime,
} from '../../src/index.ts';
import { CounterSampler, type OverviewSample } from './sampler.ts';

/** How often the counters are sampled: the charts' resolution. */
export const SAMPLE_INTERVAL_MS = 1000;
/** How much history is kept: the charts' width. */
export const HISTORY_MS = 5 * 60_000;

/** Whether the two databases answer, as the readiness probe asks them. */
export interface GatewayStatus {
  checkedAt: Date;
  systemDatabase: DatabaseHealth;
  store: DatabaseHealth;
}

/**
 * The overview in one gateway: a sampler of its counters that runs from start to stop, the last
 * five minutes of samples, and the databases' status, asked only when someone looks.
 */
export class Overview implements ModuleInstance {
  readonly #runtime: Runtime;
  readonly sampler: CounterSampler;
  #timer: ReturnType<typeof every> | undefined;
  /** The streams of samples open now, ended on stop. */
  readonly #streams = new Set<() => void>();
  #status: { startedAt: number; settled: boolean; result: Promise<GatewayStatus> } | undefined;

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
    this.sampler = new CounterSampler(runtime.metrics, {
      capacity: HISTORY_MS / SAMPLE_INTERVAL_MS,
      clock: runtime.clock,
    });
  }

  async start() {
    await this.sampler.read();
    this.#timer = every(SAMPLE_INTERVAL_MS, async () => {
      try {
        await this.sampler.read();
      } catch (error) {
        this.#runtime.log.error({ err: error }, 'sampling the counters for the overview failed');
      }
    });
  }

  async stop() {
    await this.#timer?.stop();
    for (const end of this.#streams) end();
  }

  /** Each new sample, until the subscriber leaves or the gateway stops. */
  samples(): AsyncIterableIterator<OverviewSample> {
    return new Repeater<OverviewSample>(async (push, stop) => {
      this.#streams.add(stop);
      const off = this.sampler.onSample((sample) => void push(sample));
      await stop;
      off();
      this.#streams.delete(stop);
    });
  }

  /**
   * The databases' status. One probe serves every admin watching within a sampling interval (and
   * while it waits for a database that does not answer), and none runs while nobody looks.
   */
  status(): Promise<GatewayStatus> {
    const now = performance.now();
    const last = this.#status;
    if (last && (!last.settled || now - last.startedAt < SAMPLE_INTERVAL_MS)) return last.result;
    const probe = { startedAt: now, settled: false, result: this.#probe() };
    const settle = () => {
      probe.settled = true;
    };
    probe.result.then(settle, settle);
    this.#status = probe;
    return probe.result;
  }

  async #probe(): Promise<GatewayStatus> {
    const { db, store, clock } = this.#runtime;
    const { system, store: held } = await databasesHealth(db, store);
    return { checkedAt: new Date(clock.now()), systemDatabase: system, store: held };
  }
}
