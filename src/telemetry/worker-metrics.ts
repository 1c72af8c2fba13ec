import { AggregatorRegistry, type Registry } from 'prom-client';
import type { IpcEndpoint, WorkerChannel } from '../pubsub/ipc.ts';

/**
 * `GET /metrics` under `portico start --workers`: a scrape lands on one worker, which asks the
 * primary for every worker's counters; the primary asks each worker and sums them
 * (`AggregatorRegistry.aggregate`, each metric by its `aggregator`: a sum unless it says
 * otherwise). Prometheus then sees one gateway, as if one process had counted, rather than the
 * counters of whichever worker answered (which would look like resets at every scrape).
 */

/** A worker's metrics in the JSON prom-client reads and writes. */
type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** How long the primary waits for every worker's counters, and a worker for the primary's sum. */
export const GATHER_TIMEOUT_MS = 2000;

/** Worker to primary: every worker's metrics, please. */
interface GatherRequest {
  portico: 'metrics-gather';
  id: number;
}
/** Primary to each worker: your metrics. */
interface CollectRequest {
  portico: 'metrics-collect';
  id: number;
}
/** Worker to primary: its metrics, or why not. */
interface Collected {
  portico: 'metrics-collected';
  id: number;
  metrics?: MetricsJson;
  error?: string;
}
/** Primary to the asking worker: the sum in Prometheus' text format, or why not. */
interface Gathered {
  portico: 'metrics-gathered';
  id: number;
  text?: string;
  error?: string;
}

const isOf = <T extends { portico: string; id: number }>(value: unknown, kind: T['portico']): value is T =>
  typeof value === 'object' &&
  value !== null &&
  (value as T).portico === kind &&
  typeof (value as T).id === 'number';

/** A worker's side: answers the primary's collects from `registry`, and gathers for its endpoint. */
export class WorkerMetrics {
  readonly #registry: Registry;
  readonly #channel: WorkerChannel;
  readonly #waiting = new Map<number, (answer: Gathered) => void>();
  #next = 0;

  constructor(registry: Registry, channel = process as unknown as WorkerChannel) {
    this.#registry = registry;
    this.#channel = channel;
    channel.on('message', this.#onMessage);
  }

  /** Every worker's metrics summed, in Prometheus' text format; rejects when one did not answer in time. */
  gather(): Promise<string> {
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const timer = setTimeout(() => {
      this.#waiting.delete(id);
      reject(new Error(`the primary process did not answer within ${GATHER_TIMEOUT_MS * 2} ms`));
    }, GATHER_TIMEOUT_MS * 2);
    this.#waiting.set(id, (answer) => {
      clearTimeout(timer);
      if (answer.text === undefined) reject(new Error(answer.error ?? 'no metrics'));
      else resolve(answer.text);
    });
    this.#channel.send({ portico: 'metrics-gather', id } satisfies GatherRequest, (error) => {
      if (error) this.#waiting.get(id)?.({ portico: 'metrics-gathered', id, error: error.message });
    });
    return promise;
  }

  close(): void {
    this.#channel.off('message', this.#onMessage);
    for (const answer of this.#waiting.values())
      answer({ portico: 'metrics-gathered', id: -1, error: 'closed' });
    this.#waiting.clear();
  }

  readonly #onMessage = (message: unknown) => {
    if (isOf<Gathered>(message, 'metrics-gathered')) {
      const answer = this.#waiting.get(message.id);
      this.#waiting.delete(message.id);
      answer?.(message);
    } else if (isOf<CollectRequest>(message, 'metrics-collect')) {
      const { id } = message;
      const reply = (collected: Collected) => this.#channel.send(collected, () => {});
      this.#registry.getMetricsAsJSON().then(
        (metrics) => reply({ portico: 'metrics-collected', id, metrics }),
        (error: unknown) => reply({ portico: 'metrics-collected', id, error: String(error) }),
      );
    }
  };
}

/** One gathering under way in the primary. */
interface Gathering {
  asker: IpcEndpoint;
  askerId: number;
  /** The workers not heard from yet. */
  missing: Set<IpcEndpoint>;
  parts: MetricsJson[];
  timer: NodeJS.Timeout;
}

/** The primary's side: asks every worker for its metrics and answers the asking worker with the sum. */
export class MetricsGatherer {
  readonly #gatherings = new Map<number, Gathering>();
  #next = 0;

  /** Handles `message` from `from` if it is about metrics; returns whether it was. */
  handle(from: IpcEndpoint, message: unknown, workers: IpcEndpoint[]): boolean {
    if (isOf<GatherRequest>(message, 'metrics-gather')) {
      this.#start(from, message.id, workers);
      return true;
    }
    if (isOf<Collected>(message, 'metrics-collected')) {
      const gathering = this.#gatherings.get(message.id);
      if (!gathering?.missing.delete(from)) return true;
      if (!message.metrics)
        this.#finish(message.id, { error: `a worker failed to collect: ${message.error}` });
      else {
        gathering.parts.push(message.metrics);
        if (gathering.missing.size === 0) this.#finish(message.id);
      }
      return true;
    }
    return false;
  }

  #start(asker: IpcEndpoint, askerId: number, workers: IpcEndpoint[]) {
    const id = this.#next++;
    const timer = setTimeout(
      () => this.#finish(id, { error: `a worker did not answer within ${GATHER_TIMEOUT_MS} ms` }),
      GATHER_TIMEOUT_MS,
    );
    this.#gatherings.set(id, { asker, askerId, missing: new Set(workers), parts: [], timer });
    for (const worker of workers) {
      worker.send({ portico: 'metrics-collect', id } satisfies CollectRequest, (error) => {
        if (error) this.#finish(id, { error: `a worker could not be asked: ${error.message}` });
      });
    }
  }

  #finish(id: number, failure?: { error: string }) {
    const gathering = this.#gatherings.get(id);
    if (!gathering) return;
    this.#gatherings.delete(id);
    clearTimeout(gathering.timer);
    const answer = (gathered: Omit<Gathered, 'portico' | 'id'>) =>
      gathering.asker.send({ portico: 'metrics-gathered', id: gathering.askerId, ...gathered }, () => {});
    if (failure) {
      answer(failure);
      return;
    }
    AggregatorRegistry.aggregate(gathering.parts)
      .metrics()
      .then(
        (text) => answer({ text }),
        (error: unknown) => answer({ error: String(error) }),
      );
  }
}
