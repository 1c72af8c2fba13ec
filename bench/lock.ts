/**
 * `npm run bench:lock`: Portico on SQLite (identity and store in two files, as in `npm run bench`;
 * production mode) in a child process, while another process holds the write lock of both
 * (`BEGIN EXCLUSIVE`) for 12 s and writers keep
 * trying (`putDocument`, `logIn`): the latency of `GET /health` and of a read, and what the writes
 * answer. Then, without a lock, write throughput (`putDocument` by autocannon), the figure the
 * asynchronous lock wait must not make worse. See BENCHMARKS.md, "SQLite write lock".
 *
 * Environment (all optional): BENCH_LOCK_ROUNDS (lock holds, default 3; 0 measures throughput only), BENCH_LOCK_SECONDS (each
 * hold, default 12), BENCH_DURATION (seconds per write-throughput round, default 4; 3 rounds after
 * a 2 s warm-up), BENCH_CONNECTIONS (default 10).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import {
  BENCH_ADMIN,
  cpuMs,
  firstAdminCookie,
  graphql,
  percentile,
  positive,
  runBenchmark,
  startPortico,
} from './portico.ts';

const root = join(import.meta.dirname, '..');
const ROUNDS = positive('BENCH_LOCK_ROUNDS', 3, true);
const HOLD_SECONDS = positive('BENCH_LOCK_SECONDS', 12);
const DURATION = positive('BENCH_DURATION', 4);
const CONNECTIONS = positive('BENCH_CONNECTIONS', 10);
const POLL_EVERY_MS = 50;

const LOG_IN = `mutation { logIn(email: "${BENCH_ADMIN.email}", password: "${BENCH_ADMIN.password}") { user { id } } }`;
const PUT =
  'mutation ($rank: Int!) { putDocument(collection: "items", id: "bench", data: { group: "g1", rank: $rank }) { id } }';
const PAGE =
  '{ documents(collection: "items", index: "byGroup", where: { eq: { group: "g1" } }, first: 20) { edges { node { id } } } }';
// Six digits throughout: autocannon keeps the first body's Content-Length.
let rank = 100_000;

const children: ChildProcess[] = [];
let dataDir: string | undefined;

function cleanUp() {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

/** A second process holding `BEGIN EXCLUSIVE` on each file until `release()`. */
async function holdWriteLock(files: string[]) {
  const holder = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import Database from 'better-sqlite3';
       const held = process.argv.slice(1).map((file) => new Database(file));
       for (const db of held) db.exec('begin exclusive');
       process.stdout.write('locked\\n');
       process.stdin.once('data', () => { for (const db of held) db.exec('commit'); process.exit(0); });`,
      ...files,
    ],
    { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  children.push(holder);
  await new Promise<void>((resolve, reject) => {
    holder.once('exit', (code) => reject(new Error(`the lock holder exited (${code})`)));
    holder.stdout!.once('data', () => resolve());
  });
  return async () => {
    const exited = once(holder, 'exit');
    holder.stdin!.write('release\n');
    await exited;
  };
}

const ms = (value: number) => `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;

/**
 * Polls `request` every POLL_EVERY_MS until `until`; its latencies, a failed request's included
 * (a stalled server drops kept-alive connections: the client sees ECONNRESET).
 */
async function poll(until: number, request: () => Promise<unknown>) {
  const latencies: number[] = [];
  let failures = 0;
  while (Date.now() < until) {
    const start = performance.now();
    await request().catch(() => failures++);
    latencies.push(performance.now() - start);
    await sleep(POLL_EVERY_MS);
  }
  return Object.assign(latencies, { failures });
}

/** Sends `request` again and again until `until`; each answer's status (0: no answer) and duration. */
async function keepWriting(until: number, request: () => Promise<Response>) {
  const answers: { status: number; ms: number }[] = [];
  while (Date.now() < until) {
    const start = performance.now();
    const status = await request().then(
      (response) => response.status,
      () => 0,
    );
    answers.push({ status, ms: performance.now() - start });
  }
  return answers;
}

async function lockRound(url: string, cookie: string, files: string[]) {
  const release = await holdWriteLock(files);
  const until = Date.now() + HOLD_SECONDS * 1000;
  const [health, reads, ...writers] = await Promise.all([
    poll(until, () => fetch(`${url}/health`).then((response) => response.text())),
    poll(until, () => graphql(url, PAGE, {}, cookie)),
    keepWriting(until, async () => (await graphql(url, PUT, { rank: rank++ }, cookie)).response),
    keepWriting(until, async () => (await graphql(url, PUT, { rank: rank++ }, cookie)).response),
    keepWriting(until, async () => (await graphql(url, LOG_IN)).response),
    keepWriting(until, async () => (await graphql(url, LOG_IN)).response),
  ]);
  await release();
  return { health, reads, writes: writers.flat() };
}

/** putDocument by autocannon: req/s, p99, and Portico's CPU time per write (steadier than req/s on a busy machine). */
async function writeThroughput(url: string, cookie: string, pid: number, seconds: number) {
  const cpuBefore = await cpuMs(pid);
  const result = await autocannon({
    url: `${url}/graphql`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    headers: { 'content-type': 'application/json', cookie },
    // autocannon 9 calls `setupRequest` only for an entry of `requests`, not as a top-level option.
    requests: [
      {
        method: 'POST',
        setupRequest: (request: { body?: string }) => ({
          ...request,
          body: JSON.stringify({ query: PUT, variables: { rank: rank++ } }),
        }),
      },
    ],
  });
  if (result.errors || result.timeouts || result.non2xx) {
    throw new Error(`write throughput run failed: ${JSON.stringify(result.statusCodeStats)}`);
  }
  return {
    reqPerSec: result.requests.total / result.duration,
    p99: result.latency.p99,
    cpuMsPerWrite: ((await cpuMs(pid)) - cpuBefore) / result.requests.total,
  };
}

async function main() {
  dataDir = await mkdtemp(join(tmpdir(), 'portico-bench-lock-'));
  console.log(
    `SQLite write-lock benchmark: Node ${process.version}, ${cpus().length} cores; ${ROUNDS} holds of ` +
      `${HOLD_SECONDS} s with 2 putDocument and 2 logIn writers; then ${CONNECTIONS} connections of putDocument\n`,
  );
  const { url, token, child } = await startPortico(
    dataDir,
    { collections: { items: { indexes: { byGroup: ['group', 'rank'] } } } },
    {
      DATABASE_URL: `sqlite:${join(dataDir, 'store.sqlite')}`,
      SYSTEM_DATABASE_URL: `sqlite:${join(dataDir, 'system.sqlite')}`,
    },
    (spawned) => children.push(spawned),
  );
  const pid = child.pid!;
  const cookie = await firstAdminCookie(url, token);
  if ((await graphql(url, PUT, { rank: rank++ }, cookie)).body.errors) throw new Error('seeding failed');

  const files = [join(dataDir, 'store.sqlite'), join(dataDir, 'system.sqlite')];
  const maxima: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const { health, reads, writes } = await lockRound(url, cookie, files);
    maxima.push(Math.max(...health));
    const byStatus = Object.entries(Object.groupBy(writes, (write) => String(write.status)))
      .map(
        ([status, group]) =>
          `${group!.length} × ${status} (median ${ms(
            percentile(
              group!.map((w) => w.ms),
              50,
            ),
          )})`,
      )
      .join(', ');
    console.log(
      `Hold ${round}/${ROUNDS}: /health p50 ${ms(percentile(health, 50))}, p99 ${ms(percentile(health, 99))}, ` +
        `max ${ms(Math.max(...health))} (${health.length} polls, ${health.failures} failed); read p50 ${ms(percentile(reads, 50))}, ` +
        `max ${ms(Math.max(...reads))}; writes: ${byStatus}`,
    );
  }
  if (ROUNDS > 0)
    console.log(
      `/health max over the holds: ${maxima.map(ms).join(', ')} (spread ${ms(Math.min(...maxima))}–${ms(Math.max(...maxima))})\n`,
    );

  await writeThroughput(url, cookie, pid, 2);
  const rounds: Awaited<ReturnType<typeof writeThroughput>>[] = [];
  for (let round = 0; round < 3; round++) rounds.push(await writeThroughput(url, cookie, pid, DURATION));
  const mean = (values: number[]) => values.reduce((a, b) => a + b) / values.length;
  console.log(
    `putDocument without a lock: ${Math.round(mean(rounds.map((r) => r.reqPerSec)))} req/s ` +
      `(rounds ${rounds.map((r) => Math.round(r.reqPerSec)).join(', ')}), p99 ${Math.max(...rounds.map((r) => r.p99))} ms, ` +
      `${mean(rounds.map((r) => r.cpuMsPerWrite)).toFixed(2)} ms of Portico CPU per write ` +
      `(rounds ${rounds.map((r) => r.cpuMsPerWrite.toFixed(2)).join(', ')})`,
  );
}

runBenchmark(main, cleanUp);
