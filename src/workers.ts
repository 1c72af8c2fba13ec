import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Environment } from './config.ts';
import type { Logger } from './logger.ts';
import { PubSubRelay } from './pubsub/ipc.ts';
import { PUBSUB_ADAPTER_DESCRIPTIONS, pubSubAdapterFor } from './pubsub/open.ts';
import { MetricsGatherer } from './telemetry/worker-metrics.ts';

/**
 * `portico start --workers N`: a primary process that does no GraphQL work forks N workers, each
 * a whole gateway listening on the same port (Node's cluster module hands each new connection to
 * the next worker), relays the pub/sub between them when no broker is configured, and replaces a
 * worker that dies.
 */

/** The environment variable that tells a worker its number (set by the primary, for each fork). */
const WORKER_VARIABLE = 'PORTICO_WORKER';

/** Most workers one primary runs: beyond, it is a typo rather than a machine. */
const MAX_WORKERS = 1024;

/** `--workers` and `PORTICO_WORKERS`: an integer from 1 to MAX_WORKERS, or `auto` (one per core). */
export function parseWorkerCount(value: string): number | undefined {
  if (value === 'auto') return availableParallelism();
  if (!/^\d+$/.test(value)) return undefined;
  const count = Number(value);
  return count >= 1 && count <= MAX_WORKERS ? count : undefined;
}

export const WORKER_COUNT_EXPECTED = `an integer from 1 to ${MAX_WORKERS}, or auto (one per core)`;

/** This process's worker number when the primary of `portico start --workers` forked it. */
export function workerNumber(env: Record<string, string | undefined>): number | undefined {
  const value = env[WORKER_VARIABLE];
  return cluster.isWorker && value && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** A worker that listened at least this long before it died is replaced at once. */
const STABLE_MS = 30_000;

/** Before the `failures`-th replacement in a row of a worker that did not last: 0, then 1 s doubling to 30 s. */
const restartDelay = (failures: number) =>
  failures === 0 ? 0 : Math.min(1000 * 2 ** (failures - 1), 30_000);

/** How long the primary waits for its workers' graceful shutdown before it kills them. */
const SHUTDOWN_TIMEOUT_MS = 30_000;

export interface PrimaryOptions {
  count: number;
  env: Pick<Environment, 'host' | 'mode' | 'redisUrl' | 'systemDatabaseUrl'>;
  log: Logger;
  /** The configuration file, for the listening line. */
  source: string | undefined;
}

/** A worker's request to open the databases, and the primary's answer once worker 1 listens. */
const MAY_START = { portico: 'may-start' } as const;
const START = { portico: 'start' } as const;

const isMessage = (value: unknown, expected: { portico: string }) =>
  typeof value === 'object' &&
  value !== null &&
  (value as { portico?: unknown }).portico === expected.portico;

/**
 * In a worker, before it opens the databases: worker 1 goes first, because bringing the schemas
 * up to date, building indexes and printing the bootstrap link must happen once; the others wait
 * (having loaded their code meanwhile) until it listens, then find that work done.
 */
export async function awaitTurn(worker: number): Promise<void> {
  if (worker === 1) return;
  const { promise, resolve } = Promise.withResolvers<void>();
  const onMessage = (message: unknown) => {
    if (isMessage(message, START)) resolve();
  };
  process.on('message', onMessage);
  process.send?.(MAY_START);
  await promise;
  process.off('message', onMessage);
}

/**
 * Runs the primary: forks the workers, lets worker 1 start first (`awaitTurn`), and once they all
 * listen logs the start. Resolves with the exit code once SIGTERM or SIGINT has stopped every
 * worker: 0 when each stopped cleanly. A worker that fails to start fails the start (its reason is
 * on standard error); one that dies later is replaced, with a backoff when it keeps dying.
 */
export async function runPrimary({ count, env, log, source }: PrimaryOptions): Promise<number> {
  const relay = new PubSubRelay(log);
  const metrics = new MetricsGatherer();
  const adapter = pubSubAdapterFor({ ...env, worker: 1 });
  const firstListens = Promise.withResolvers<void>();
  /** The exit code of the first worker that exits before every worker listens. */
  const startFailed = Promise.withResolvers<number>();
  const onMessage = (from: Worker, message: unknown) => {
    if (adapter === 'ipc' && relay.relay(from, message, connectedWorkers())) return;
    if (metrics.handle(from, message, connectedWorkers())) return;
    if (isMessage(message, MAY_START)) void firstListens.promise.then(() => from.send(START, () => {}));
  };
  cluster.on('message', onMessage);

  /** The worker of each number while it runs, and whether it listened. */
  const running = new Map<number, { worker: Worker; listened: boolean }>();
  /** Deaths in a row of each number's workers that did not last (for the backoff). */
  const failures = new Map<number, number>();
  const replacements = new Map<number, NodeJS.Timeout>();
  let serving = false;
  let stopping: Promise<number> | undefined;

  /** Resolves with the port once the worker listens (never, when it exits first). */
  const fork = (number: number): Promise<number> => {
    const worker = cluster.fork({ [WORKER_VARIABLE]: String(number) });
    const entry = { worker, listened: false };
    running.set(number, entry);
    // Sends to a worker that just died fail with an 'error' event, which must not end the primary.
    worker.on('error', (error) =>
      log.warn({ err: error, worker: number }, `worker ${number}: ${error.message}`),
    );
    let listenedAt: number | undefined;
    return new Promise((resolve) => {
      worker.once('listening', (address) => {
        entry.listened = true;
        listenedAt = Date.now();
        if (number === 1) firstListens.resolve();
        if (serving)
          log.info({ worker: number, pid: worker.process.pid }, `worker ${number} is serving again`);
        resolve(address.port);
      });
      worker.once('exit', (code, signal) => {
        running.delete(number);
        if (stopping) return;
        // Before all listen, an exit (even one that had listened) fails the start.
        if (!serving) {
          startFailed.resolve(code ?? 1);
          return;
        }
        const lasted = listenedAt !== undefined && Date.now() - listenedAt >= STABLE_MS;
        const failed = lasted ? 0 : (failures.get(number) ?? 0);
        const delay = restartDelay(failed);
        failures.set(number, failed + 1);
        log.error(
          { worker: number, pid: worker.process.pid, code, signal, restartInMs: delay },
          `worker ${number} exited (${signal ?? `code ${code}`}); starting another${delay > 0 ? ` in ${delay} ms` : ''}`,
        );
        replacements.set(
          number,
          setTimeout(() => {
            replacements.delete(number);
            void fork(number);
          }, delay),
        );
      });
    });
  };

  const stop = (): Promise<number> => {
    stopping ??= (async () => {
      for (const timer of replacements.values()) clearTimeout(timer);
      const workers = [...running.values()];
      const exits = workers.map(
        ({ worker, listened }) =>
          new Promise<boolean>((resolve) => {
            worker.once('exit', (code, signal) =>
              // One still starting has nothing to finish: SIGTERM ends it at once, and that is fine.
              resolve(code === 0 || (!listened && signal === 'SIGTERM')),
            );
          }),
      );
      for (const { worker } of workers) worker.process.kill('SIGTERM');
      const killer = setTimeout(() => {
        log.error(`workers did not stop within ${SHUTDOWN_TIMEOUT_MS / 1000} s: killing them`);
        for (const { worker } of workers) worker.process.kill('SIGKILL');
      }, SHUTDOWN_TIMEOUT_MS);
      const clean = await Promise.all(exits);
      clearTimeout(killer);
      cluster.off('message', onMessage);
      return clean.every(Boolean) ? 0 : 1;
    })();
    return stopping;
  };

  const signalled = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const interrupted = signalled.then((signal) => {
    log.info({ signal }, 'shutting down: stopping the workers');
    return null;
  });

  const forks = Array.from({ length: count }, (_, index) => fork(index + 1));
  // Worker 1 failing would leave the others waiting for their turn: the first exit decides.
  const started = await Promise.race([Promise.all(forks), startFailed.promise, interrupted]);
  if (started === null) return stop();
  if (!Array.isArray(started)) {
    await stop();
    // The start failed: never 0, even from a worker that exited with it.
    return started === 0 ? 1 : started;
  }
  serving = true;
  const [port] = started;
  const url = `http://${env.host.includes(':') ? `[${env.host}]` : env.host}:${port}`;
  log.info(
    { url, mode: env.mode, config: source ?? null, workers: count, pubsub: adapter },
    `Portico listening on ${url}: ${count} workers, pub/sub ${PUBSUB_ADAPTER_DESCRIPTIONS[adapter]}`,
  );
  await interrupted;
  return stop();
}

/** The workers whose IPC channel is open (a dead one may linger in `cluster.workers` a moment). */
function connectedWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter(
    (worker): worker is Worker => worker?.isConnected() === true,
  );
}
