/**
 * `npm run bench:switch`: Portico on SQLite (identity and store in two files, production mode) in
 * a child process under a steady load of `putDocument` and a 20-document index page (autocannon),
 * first without a switch, then while an admin switches the store 20 times (to a second SQLite file
 * and back, evenly spread over the run). Every answer must be the one the first request got:
 * any error, timeout, non-2xx answer or other body fails the run. Prints req/s and p99 of both runs
 * and how long each switch took. See BENCHMARKS.md, "Switching the store under load".
 *
 * Environment (all optional): BENCH_DURATION (seconds per run, default 10), BENCH_SWITCHES
 * (default 20), BENCH_CONNECTIONS (default 10).
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { firstAdminCookie, graphql, runBenchmark, startPortico } from './portico.ts';

const DURATION = positive('BENCH_DURATION', 10);
const SWITCHES = positive('BENCH_SWITCHES', 20);
const CONNECTIONS = positive('BENCH_CONNECTIONS', 10);

const PUT =
  'mutation { putDocument(collection: "items", id: "bench", data: { group: "g1", rank: 1 }) { id } }';
const PAGE =
  '{ documents(collection: "items", index: "byGroup", where: { eq: { group: "g1" } }, first: 20) { edges { node { id } } } }';
const SWITCH = 'mutation ($url: String!) { switchStoreBackend(url: $url) { status } }';
const RESET = 'mutation { resetStoreBackend { status } }';

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

let stopPortico = () => {};
let dataDir: string | undefined;

function cleanUp() {
  stopPortico();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

/** Alternating putDocument and index-page requests; every answer must equal the first of its kind. */
async function load(url: string, cookie: string, expected: { put: string; page: string }) {
  const mismatches: string[] = [];
  const check = (status: number, body: string, wanted: string) => {
    if (status !== 200 || body !== wanted) mismatches.push(`${status} ${body.slice(0, 200)}`);
  };
  const result = await autocannon({
    url: `${url}/graphql`,
    connections: CONNECTIONS,
    duration: DURATION,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie },
        body: JSON.stringify({ query: PUT }),
        onResponse: (status: number, body: string) => check(status, body, expected.put),
      },
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie },
        body: JSON.stringify({ query: PAGE }),
        onResponse: (status: number, body: string) => check(status, body, expected.page),
      },
    ],
  });
  return {
    reqPerSec: result.requests.total / result.duration,
    p99: result.latency.p99,
    failed: result.errors + result.timeouts + result.non2xx + mismatches.length,
    mismatches,
  };
}

async function main() {
  dataDir = await mkdtemp(join(tmpdir(), 'portico-bench-switch-'));
  console.log(
    `Store switch benchmark: Node ${process.version}, ${cpus().length} cores; ${CONNECTIONS} connections of ` +
      `putDocument and an index page for ${DURATION} s, without and then with ${SWITCHES} switches\n`,
  );
  const { url, token, child } = await startPortico(
    dataDir,
    { collections: { items: { indexes: { byGroup: ['group', 'rank'] } } } },
    {
      DATABASE_URL: `sqlite:${join(dataDir, 'store.sqlite')}`,
      SYSTEM_DATABASE_URL: `sqlite:${join(dataDir, 'system.sqlite')}`,
    },
  );
  stopPortico = () => child.kill('SIGKILL');
  const cookie = await firstAdminCookie(url, token);
  // The same document in both stores, so that every answer is the same whichever store serves it.
  const first = await graphql(url, PUT, {}, cookie);
  const expected = {
    put: JSON.stringify(first.body),
    page: JSON.stringify((await graphql(url, PAGE, {}, cookie)).body),
  };
  if (first.body.errors) throw new Error(`seeding failed: ${expected.put}`);
  const other = `sqlite:${join(dataDir, 'store-b.sqlite')}`;
  for (const change of [
    () => graphql(url, SWITCH, { url: other }, cookie),
    () => graphql(url, RESET, {}, cookie),
  ]) {
    if ((await change()).body.errors) throw new Error('preparing the second store failed');
    if ((await graphql(url, PUT, {}, cookie)).body.errors) throw new Error('seeding failed');
  }

  const steady = await load(url, cookie, expected);
  const switchMs: number[] = [];
  const switching = (async () => {
    for (let n = 0; n < SWITCHES; n++) {
      await sleep((DURATION * 1000) / (SWITCHES + 1));
      const started = performance.now();
      const answer =
        n % 2 === 0
          ? await graphql(url, SWITCH, { url: other }, cookie)
          : await graphql(url, RESET, {}, cookie);
      if (answer.body.errors)
        throw new Error(`switch ${n + 1} failed: ${JSON.stringify(answer.body.errors)}`);
      switchMs.push(performance.now() - started);
    }
  })();
  const [switched] = await Promise.all([load(url, cookie, expected), switching]);

  const sorted = [...switchMs].sort((a, b) => a - b);
  const row = (name: string, run: Awaited<ReturnType<typeof load>>) =>
    `${name}: ${Math.round(run.reqPerSec)} req/s, p99 ${run.p99} ms, ${run.failed} failed`;
  console.log(row('No switch', steady));
  console.log(row(`${SWITCHES} switches`, switched));
  console.log(
    `Each switch (open, migrate, check, build indexes, swap): median ${sorted[sorted.length >> 1]!.toFixed(0)} ms, ` +
      `max ${sorted.at(-1)!.toFixed(0)} ms`,
  );
  if (steady.failed + switched.failed > 0) {
    console.error([...steady.mismatches, ...switched.mismatches].slice(0, 5).join('\n'));
    throw new Error('requests failed');
  }
}

runBenchmark(main, cleanUp);
