/**
 * `npm run bench:observability`: what metrics and traces cost. Four Portico gateways (SQLite,
 * production mode, each in its own process and folder) serve the authenticated `viewer` query:
 * one with neither, one with `/metrics` on (scraped every second, fifteen times Prometheus'
 * default rate), one exporting every request's spans (sampling 100 %) to a local OTLP receiver,
 * and one with both. They are measured in interleaved rounds, so drift in the machine's speed
 * touches each alike, and reported as ratios to the gateway with neither: throughput, and the
 * gateway's CPU time per request (from /proc), which a busy neighbour disturbs less. See BENCHMARKS.md.
 *
 * Environment (all optional): BENCH_ROUNDS (default 3), BENCH_DURATION (seconds per gateway per
 * round, default 5), BENCH_WARMUP (seconds per gateway, default 3), BENCH_CONNECTIONS (default 10),
 * BENCH_OTLP_PROTOCOL (http/protobuf, the default as in OpenTelemetry's own; or http/json, whose
 * spans the receiver counts), BENCH_TRACES_SAMPLER (always_on, the default; always_off measures
 * the tracing plumbing without the SDK's spans).
 * Exits non-zero when a request failed, a scrape failed, or no span reached the receiver.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import {
  cpuMs,
  firstAdminCookie,
  graphql,
  percentile,
  positive,
  runBenchmark,
  startPortico,
} from './portico.ts';

const ROUNDS = positive('BENCH_ROUNDS', 3);
const DURATION = positive('BENCH_DURATION', 5);
const WARMUP = positive('BENCH_WARMUP', 3, true);
const CONNECTIONS = positive('BENCH_CONNECTIONS', 10);
const OTLP_PROTOCOL = process.env.BENCH_OTLP_PROTOCOL ?? 'http/protobuf';
const SAMPLER = process.env.BENCH_TRACES_SAMPLER ?? 'always_on';
const METRICS_TOKEN = 'bench-metrics-token-0123456789abcdef';
const SCRAPE_EVERY_MS = 1000;
const VIEWER = '{ viewer { user { id email } } }';
/** The goals: the share of throughput each may cost. */
const GOALS = { metrics: 0.05, tracing: 0.15 };

const children: ChildProcess[] = [];
const folders: string[] = [];

interface Gateway {
  name: string;
  url: string;
  pid: number;
  cookie: string;
  metrics: boolean;
  /** The one answer every request must get. */
  body: string;
}

interface Sink {
  url: string;
  /** Stops the receiver; resolves with what it received. */
  stop(): Promise<{ exports: number; bytes: number; spans: number }>;
}

async function startSink(): Promise<Sink> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'servers/otlp-sink.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  const { listening } = JSON.parse(String(first.value)) as { listening: string };
  return {
    url: listening,
    async stop() {
      child.kill('SIGTERM');
      const last = await lines.next();
      await once(child, 'exit');
      return JSON.parse(String(last.value));
    },
  };
}

async function startGateway(name: string, env: Record<string, string>): Promise<Gateway> {
  const folder = mkdtempSync(join(tmpdir(), 'portico-bench-observability-'));
  folders.push(folder);
  const { url, token, child } = await startPortico(folder, {}, env, (started) => children.push(started));
  const cookie = await firstAdminCookie(url, token);
  const answer = await graphql(url, VIEWER, {}, cookie);
  if (answer.body.errors || !answer.body.data) throw new Error(`${name}: ${JSON.stringify(answer.body)}`);
  return {
    name,
    url,
    pid: child.pid!,
    cookie,
    metrics: 'PORTICO_METRICS_TOKEN' in env,
    body: JSON.stringify(answer.body),
  };
}

/** Scrapes `/metrics` as Prometheus would, for as long as `until` is pending; counts failures. */
async function scraping(gateway: Gateway, until: Promise<unknown>, failures: string[]) {
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    const response = await fetch(`${gateway.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    const text = await response.text();
    if (response.status !== 200 || !text.includes('portico_http_requests_total')) {
      failures.push(`${gateway.name}: /metrics answered ${response.status}`);
    }
    await new Promise((resolve) => setTimeout(resolve, SCRAPE_EVERY_MS));
  }
}

async function cannon(gateway: Gateway, seconds: number, failures: string[]) {
  const latencies: number[] = [];
  const instance = autocannon({
    url: `${gateway.url}/graphql`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    headers: { 'content-type': 'application/json', cookie: gateway.cookie },
    body: JSON.stringify({ query: VIEWER }),
    expectBody: gateway.body,
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latencies.push(ms);
  });
  const cpuBefore = await cpuMs(gateway.pid);
  const finished = Promise.resolve(instance);
  const scraper = gateway.metrics ? scraping(gateway, finished, failures) : undefined;
  const result = await finished;
  await scraper;
  const cpu = (await cpuMs(gateway.pid)) - cpuBefore;
  const wrong = result.errors + result.timeouts + result.non2xx + result.mismatches;
  if (wrong > 0) failures.push(`${gateway.name}: ${wrong} failed requests`);
  return {
    perSecond: result.requests.total / result.duration,
    requests: result.requests.total,
    cpu,
    latencies,
  };
}

async function main() {
  console.log(
    `Observability benchmark: Node ${process.version}, ${cpus().length} cores, ${CONNECTIONS} connections, ` +
      `${WARMUP} s warm-up, then ${ROUNDS} interleaved rounds of ${DURATION} s per gateway; ` +
      `spans as OTLP ${OTLP_PROTOCOL}, sampler ${SAMPLER}\n`,
  );
  const sink = await startSink();
  const tracing = {
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: OTLP_PROTOCOL,
    OTEL_TRACES_SAMPLER: SAMPLER,
    OTEL_SERVICE_NAME: 'portico-bench',
  };
  const gateways = [
    await startGateway('neither', {}),
    await startGateway('metrics on', { PORTICO_METRICS_TOKEN: METRICS_TOKEN }),
    await startGateway('tracing on', tracing),
    await startGateway('both on', { PORTICO_METRICS_TOKEN: METRICS_TOKEN, ...tracing }),
  ];
  const failures: string[] = [];
  if (WARMUP > 0) for (const gateway of gateways) await cannon(gateway, WARMUP, failures);

  const totals = gateways.map(() => ({
    rounds: [] as number[],
    requests: 0,
    cpu: 0,
    latencies: [] as number[],
  }));
  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    for (const [index, gateway] of gateways.entries()) {
      const { perSecond, requests, cpu, latencies } = await cannon(gateway, DURATION, failures);
      const total = totals[index]!;
      total.rounds.push(perSecond);
      total.requests += requests;
      total.cpu += cpu;
      for (const latency of latencies) total.latencies.push(latency);
      line.push(Math.round(perSecond).toString());
    }
    console.log(`Round ${round}/${ROUNDS} req/s: ${line.join(' | ')}`);
  }
  for (const child of children.splice(1)) child.kill('SIGTERM');
  const received = await sink.stop();

  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const baseline = mean(totals[0]!.rounds);
  const cpuPerRequest = (index: number) => (1000 * totals[index]!.cpu) / totals[index]!.requests;
  console.log(
    '\n| gateway | req/s | rounds (min–max) | p99 ms | vs neither | CPU µs / request | vs neither |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [index, gateway] of gateways.entries()) {
    const { rounds, latencies } = totals[index]!;
    console.log(
      `| ${gateway.name} | ${Math.round(mean(rounds))} | ${Math.round(Math.min(...rounds))}–${Math.round(Math.max(...rounds))} ` +
        `| ${percentile(latencies, 99).toFixed(2)} | ${(mean(rounds) / baseline).toFixed(3)} × ` +
        `| ${cpuPerRequest(index).toFixed(0)} | ${(cpuPerRequest(index) / cpuPerRequest(0)).toFixed(3)} × |`,
    );
  }
  const traced = totals[2]!.requests + totals[3]!.requests;
  console.log(
    `\nOTLP receiver: ${received.exports} exports, ${(received.bytes / 2 ** 20).toFixed(1)} MiB` +
      (OTLP_PROTOCOL === 'http/json'
        ? `, ${received.spans} spans for ${traced} measured traced requests (warm-up included in spans)`
        : ''),
  );
  for (const [index, name] of [
    [1, 'metrics'],
    [2, 'tracing'],
  ] as const) {
    const cost = 1 - mean(totals[index]!.rounds) / baseline;
    const goal = GOALS[name];
    console.log(
      `${name} on costs ${(cost * 100).toFixed(1)} % of throughput (goal < ${goal * 100} %): ${cost < goal ? 'met' : 'missed'}`,
    );
  }
  if (received.exports === 0 && SAMPLER !== 'always_off') failures.push('no span reached the OTLP receiver');
  if (failures.length > 0) throw new Error(`The run saw failures:\n${[...new Set(failures)].join('\n')}`);
}

runBenchmark(main, () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});
