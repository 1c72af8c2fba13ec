/**
 * `npm run bench:workers`: `portico start --workers N` on SQLite (identity and store in two files,
 * as in `npm run bench`; production mode), for each N of BENCH_WORKERS, all started first in
 * fresh folders and then measured in interleaved rounds (the viewer query, then `putDocument`, on
 * each deployment in turn), with autocannon in this process. Prints req/s, p50 and p99 per
 * deployment, the CPU its processes used (primary and workers; the primary alone) and the CPU
 * autocannon used here, each as cores busy over the run, and Portico's CPU time per request. See BENCHMARKS.md, "Every core".
 *
 * Environment (all optional): BENCH_WORKERS (comma-separated worker counts, default "1,2"),
 * BENCH_ROUNDS (default 2), BENCH_DURATION (seconds per target per round, default 4),
 * BENCH_WARMUP (seconds per target, default 2), BENCH_CONNECTIONS (default 10). Exits non-zero when
 * a run saw errors, timeouts, non-2xx answers or unexpected bodies.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
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

const WORKERS = (process.env.BENCH_WORKERS ?? '1,2').split(',').map((count) => {
  const workers = Number(count);
  if (!Number.isInteger(workers) || workers < 1)
    throw new Error('BENCH_WORKERS: comma-separated integers >= 1');
  return workers;
});
const ROUNDS = positive('BENCH_ROUNDS', 2);
const DURATION = positive('BENCH_DURATION', 4);
const WARMUP = positive('BENCH_WARMUP', 2, true);
const CONNECTIONS = positive('BENCH_CONNECTIONS', 10);

const CONFIG = {
  collections: {
    items: { indexes: { byGroup: ['group', 'rank'] }, read: 'authenticated', write: 'authenticated' },
  },
};
const VIEWER = '{ viewer { user { id email } } }';
// Every put moves the document within its index (a new rank), so its index entry is rewritten too.
const PUT =
  'mutation ($rank: Int!) { putDocument(collection: "items", id: "bench", data: { group: "g9", rank: $rank, title: "bench" }) { id } }';
const PUT_ANSWER = JSON.stringify({ data: { putDocument: { id: 'bench' } } });
// Six digits throughout the run: autocannon keeps the first body's Content-Length.
let rank = 100_000;

interface Deployment {
  workers: number;
  url: string;
  cookie: string;
  child: ChildProcess;
}

interface Target {
  name: string;
  /** The first request's body; a put's answer is the same whatever its rank. */
  body: () => string;
  expected: string;
}

interface Totals {
  requests: number;
  seconds: number;
  latencies: number[];
  /** CPU time of the deployment's processes, of its primary alone, and of this process (autocannon), in ms. */
  porticoCpuMs: number;
  primaryCpuMs: number;
  autocannonCpuMs: number;
}

const children: ChildProcess[] = [];
const folders: string[] = [];
const failures: string[] = [];

function cleanUp() {
  for (const child of children.splice(0)) child.kill('SIGTERM');
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
}

/** The primary (or the only process) and its workers. */
function processesOf(child: ChildProcess): number[] {
  let workers: number[] = [];
  try {
    workers = execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number);
  } catch {
    // pgrep exits 1 when there is none: one process serves.
  }
  return [child.pid!, ...workers];
}

async function cpuOf(pids: number[]): Promise<number> {
  return (await Promise.all(pids.map(cpuMs))).reduce((total, ms) => total + ms, 0);
}

async function start(workers: number): Promise<Deployment> {
  const dataDir = await mkdtemp(join(tmpdir(), `portico-workers-${workers}-`));
  folders.push(dataDir);
  const { child, url, token } = await startPortico(
    dataDir,
    CONFIG,
    {
      DATABASE_URL: `sqlite:${join(dataDir, 'store.sqlite')}`,
      SYSTEM_DATABASE_URL: `sqlite:${join(dataDir, 'system.sqlite')}`,
    },
    (spawned) => children.push(spawned),
    ['--workers', String(workers)],
  );
  return { workers, url, cookie: await firstAdminCookie(url, token), child };
}

async function cannon(deployment: Deployment, target: Target, seconds: number, totals?: Totals) {
  const pids = processesOf(deployment.child);
  const [porticoBefore, primaryBefore, autocannonBefore] = [
    await cpuOf(pids),
    await cpuMs(pids[0]!),
    process.cpuUsage(),
  ];
  let wrongAnswers = 0;
  const instance = autocannon({
    url: `${deployment.url}/graphql`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    headers: { 'content-type': 'application/json', cookie: deployment.cookie },
    body: target.body(),
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => ({ ...request, body: target.body() }),
        onResponse: (status, answer) => {
          if (status !== 200 || answer !== target.expected) wrongAnswers++;
        },
      },
    ],
  });
  const latencies: number[] = [];
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) =>
    latencies.push(ms),
  );
  const result = await instance;
  const autocannonCpu = process.cpuUsage(autocannonBefore);
  const porticoCpuMs = (await cpuOf(pids)) - porticoBefore;
  const primaryCpuMs = (await cpuMs(pids[0]!)) - primaryBefore;
  const problems = Object.entries({
    'wrong answers': wrongAnswers,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
  }).filter(([, count]) => count > 0);
  if (problems.length > 0) {
    failures.push(
      `${target.name} on ${deployment.workers} worker(s): ${problems.map(([what, count]) => `${count} ${what}`).join(', ')}; ` +
        `status codes ${JSON.stringify(result.statusCodeStats)}`,
    );
  }
  if (totals) {
    totals.requests += result.requests.total;
    totals.seconds += result.duration;
    for (const latency of latencies) totals.latencies.push(latency);
    totals.porticoCpuMs += porticoCpuMs;
    totals.primaryCpuMs += primaryCpuMs;
    totals.autocannonCpuMs += (autocannonCpu.user + autocannonCpu.system) / 1000;
  }
  return result.requests.total / result.duration;
}

async function main() {
  console.log(
    `Workers benchmark: Node ${process.version}, ${availableParallelism()} cores, ${CONNECTIONS} connections, ` +
      `${WARMUP} s warm-up, then ${ROUNDS} interleaved rounds of ${DURATION} s per target and deployment; ` +
      `autocannon runs in this process\n`,
  );
  // One after the other: each start brings its own database files up.
  const deployments: Deployment[] = [];
  for (const workers of WORKERS) deployments.push(await start(workers));

  // Each deployment's answers, checked once here: then every answer of the runs must equal them.
  const targets = new Map<Deployment, Target[]>();
  for (const deployment of deployments) {
    const viewer = await graphql(deployment.url, VIEWER, {}, deployment.cookie);
    const put = await graphql(deployment.url, PUT, { rank: rank++ }, deployment.cookie);
    if (!viewer.body.data?.viewer || JSON.stringify(put.body) !== PUT_ANSWER)
      throw new Error(`unexpected answers: ${JSON.stringify([viewer.body, put.body])}`);
    targets.set(deployment, [
      {
        name: 'viewer',
        body: () => JSON.stringify({ query: VIEWER }),
        expected: JSON.stringify(viewer.body),
      },
      {
        name: 'putDocument',
        body: () => JSON.stringify({ query: PUT, variables: { rank: rank++ } }),
        expected: PUT_ANSWER,
      },
    ]);
  }
  const names = targets.get(deployments[0]!)!.map((target) => target.name);

  if (WARMUP > 0) {
    for (const deployment of deployments)
      for (const target of targets.get(deployment)!) await cannon(deployment, target, WARMUP);
  }
  const totals = new Map<string, Totals>();
  const totalsOf = (deployment: Deployment, name: string) => {
    const key = `${name}@${deployment.workers}`;
    let entry = totals.get(key);
    if (!entry) {
      entry = {
        requests: 0,
        seconds: 0,
        latencies: [],
        porticoCpuMs: 0,
        primaryCpuMs: 0,
        autocannonCpuMs: 0,
      };
      totals.set(key, entry);
    }
    return entry;
  };
  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    for (const name of names) {
      for (const deployment of deployments) {
        const target = targets.get(deployment)!.find((candidate) => candidate.name === name)!;
        const reqPerSec = await cannon(deployment, target, DURATION, totalsOf(deployment, name));
        line.push(`${name}@${deployment.workers} ${Math.round(reqPerSec)}`);
      }
    }
    console.log(`Round ${round}/${ROUNDS} req/s: ${line.join(' | ')}`);
  }

  const rows = [
    [
      'query',
      'workers',
      'req/s',
      `vs ${WORKERS[0]} worker${WORKERS[0] === 1 ? '' : 's'}`,
      'p50 ms',
      'p99 ms',
      'Portico CPU',
      'CPU ms / request',
      'of which primary',
      'autocannon CPU',
    ],
  ];
  for (const name of names) {
    const single = totalsOf(deployments[0]!, name);
    for (const deployment of deployments) {
      const total = totalsOf(deployment, name);
      const reqPerSec = total.requests / total.seconds;
      const cores = (ms: number) => `${(ms / 1000 / total.seconds).toFixed(2)} cores`;
      rows.push([
        name,
        String(deployment.workers),
        String(Math.round(reqPerSec)),
        `${(reqPerSec / (single.requests / single.seconds)).toFixed(2)} ×`,
        percentile(total.latencies, 50).toFixed(2),
        percentile(total.latencies, 99).toFixed(2),
        cores(total.porticoCpuMs),
        (total.porticoCpuMs / total.requests).toFixed(2),
        // With one worker there is no primary: the process is the gateway.
        deployment.workers === 1 ? '–' : cores(total.primaryCpuMs),
        cores(total.autocannonCpuMs),
      ]);
    }
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  const rule = line(
    widths.map((width, column) => (column === 0 ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)),
  );
  console.log(`\n${[line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n')}\n`);
  if (failures.length > 0) throw new Error(`Failed runs:\n${failures.join('\n')}`);
}

runBenchmark(main, cleanUp);
