import { EventEmitter } from 'node:events';
import { Counter, Gauge, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { Scrape } from '../../test/metrics.ts';
import type { IpcEndpoint, WorkerChannel } from '../pubsub/ipc.ts';
import { GATHER_TIMEOUT_MS, MetricsGatherer, WorkerMetrics } from './worker-metrics.ts';

/** Workers' IPC channels to a primary in one process (messages copied through JSON, as Node's are). */
function primaryWith(gatherer: MetricsGatherer) {
  const workers: IpcEndpoint[] = [];
  const connect = ({ silent = false } = {}) => {
    const worker = new EventEmitter();
    const primaryEnd: IpcEndpoint = {
      send: (message, callback) => {
        setImmediate(() => {
          // A worker that stopped answering (busy, paused) never reads what it is sent.
          if (!silent) worker.emit('message', JSON.parse(JSON.stringify(message)));
          callback(null);
        });
      },
    };
    workers.push(primaryEnd);
    const channel: WorkerChannel = {
      send: (message, callback) => {
        setImmediate(() => {
          gatherer.handle(primaryEnd, JSON.parse(JSON.stringify(message)), workers);
          callback(null);
        });
      },
      on: (event, listener) => worker.on(event, listener),
      off: (event, listener) => worker.off(event, listener),
    };
    return channel;
  };
  return { connect };
}

/** A worker's registry: a request counter at `requests`, and whether its database answers. */
function registryOf(requests: number, databaseUp: 0 | 1) {
  const registry = new Registry();
  new Counter({ name: 'requests_total', help: 'requests', registers: [registry] }).inc(requests);
  new Gauge({ name: 'database_up', help: 'up', registers: [registry], aggregator: 'min' }).set(databaseUp);
  return registry;
}

describe('metrics across the workers', () => {
  const opened: WorkerMetrics[] = [];
  afterEach(() => {
    for (const metrics of opened.splice(0)) metrics.close();
  });
  const worker = (registry: Registry, channel: WorkerChannel) => {
    const metrics = new WorkerMetrics(registry, channel);
    opened.push(metrics);
    return metrics;
  };

  it('answers any worker with every worker’s counters summed, each metric by its aggregator', async () => {
    const primary = primaryWith(new MetricsGatherer());
    const first = worker(registryOf(3, 1), primary.connect());
    const second = worker(registryOf(2, 0), primary.connect());
    for (const asking of [first, second]) {
      const scraped = new Scrape(await asking.gather());
      expect(scraped.value('requests_total')).toBe(5);
      // One worker's database is down: so is the deployment's, for the sum.
      expect(scraped.value('database_up')).toBe(0);
    }
  });

  it('fails the gathering when a worker does not answer in time', async () => {
    const primary = primaryWith(new MetricsGatherer());
    const asking = worker(registryOf(3, 1), primary.connect());
    worker(registryOf(2, 1), primary.connect({ silent: true }));
    const started = Date.now();
    await expect(asking.gather()).rejects.toThrow(`a worker did not answer within ${GATHER_TIMEOUT_MS} ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(GATHER_TIMEOUT_MS - 50);
  });
});
