/**
 * `npm run bench:remote`: a Portico in front of another Portico's store. A data server (SQLite,
 * identity and store in two files, production mode) and an edge whose `DATABASE_URL` is
 * `portico+http://` the data server (identity in its own SQLite file, every store call sent to the
 * data server with an API key of scope `store:serve`), each in a child process, with the
 * collection of `npm run bench` (one index `byGroup (group, rank)`, 1000 documents). autocannon
 * sends `putDocument` (a new rank every time) and a 20-document index page straight to the data
 * server (its first admin's cookie) and through the edge (the edge's first admin's cookie), in
 * interleaved rounds, and prints req/s, p50 and p99 of each, the CPU each process spent per
 * request, the edge/direct ratios and the latency the edge adds. See BENCHMARKS.md, "An edge in
 * front of a data server".
 *
 * `putDocument` runs twice: on one document from every connection, as `npm run bench` does, and on
 * 1000 documents in turn, so that no two writes meet on one document. Through the edge, writes that
 * meet can end in CONFLICT ("The document keeps changing: retry.", after the edge's retries): those
 * are counted and left out of req/s; any other unexpected answer fails the run.
 *
 * Environment (all optional): BENCH_ROUNDS (measured rounds, default 3), BENCH_DURATION (seconds
 * per target per round, default 4), BENCH_WARMUP (seconds per target, default 3), BENCH_CONNECTIONS
 * (default 10), BENCH_PROFILE (a folder: both gateways run with --cpu-prof and write their profiles
 * to `edge/` and `data-server/` in it).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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
const DURATION = positive('BENCH_DURATION', 4);
const WARMUP = positive('BENCH_WARMUP', 3, true);
const CONNECTIONS = positive('BENCH_CONNECTIONS', 10);
const PROFILE_DIR = process.env.BENCH_PROFILE ? resolve(process.env.BENCH_PROFILE) : undefined;
/** The goal for each operation through the edge, as a fraction of its req/s straight to the data server. */
const GOAL = 0.5;

// The collection, the write and the page of `npm run bench` (bench/run.ts); the write takes its id
// as a variable and answers `collection`, the same for every id.
const BENCH_CONFIG = {
  collections: {
    items: { indexes: { byGroup: ['group', 'rank'] }, read: 'authenticated', write: 'authenticated' },
  },
};
// Every put moves the document within its index (a new rank), so its index entry is rewritten too.
const PUT =
  'mutation ($id: ID!, $rank: Int!) { putDocument(collection: "items", id: $id, data: { group: "g9", rank: $rank, title: "bench" }) { collection } }';
const PAGE =
  '{ documents(collection: "items", index: "byGroup", where: { eq: { group: "g1" } }, first: 20) { edges { node { id data } } } }';
const SEED = 'mutation ($data: JSONObject!) { putDocument(collection: "items", data: $data) { id } }';
const CREATE_KEY =
  'mutation ($name: String!) { createApiKey(name: $name, scopes: ["store:serve"]) { secret } }';
// Six digits throughout the run: autocannon keeps the first body's Content-Length.
let rank = 100_000;
/** The documents the second `putDocument` target replaces in turn: 10 connections never meet on one. */
const RING = 1000;
let ringPosition = 0;
const ringId = (position: number) => `bench-${String(position % RING).padStart(3, '0')}`;
const onOneDocument = () => ({ id: 'bench-one', rank: rank++ });
const onTheRing = () => ({ id: ringId(ringPosition++), rank: rank++ });

const children: ChildProcess[] = [];
let dataDir: string | undefined;

function cleanUp() {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

interface Target {
  name: string;
  url: string;
  cookie: string;
  query: string;
  /** Fresh variables for every request. */
  variables?: () => Record<string, unknown>;
  /** Every answer must be this exact body (the one the request before the runs got), or a counted CONFLICT. */
  body: string;
}

interface Run {
  /** Answers with the expected body. */
  answered: number;
  conflicts: number;
  seconds: number;
  p50: number;
  p99: number;
  /** CPU ms used by the data server and by the edge during the run. */
  cpu: { dataServer: number; edge: number };
  latencies: number[];
}

const reqPerSec = (run: Pick<Run, 'answered' | 'seconds'>) => run.answered / run.seconds;

type Pids = { dataServer: number; edge: number };

const failures: string[] = [];

const requestBody = (target: Target) =>
  JSON.stringify({ query: target.query, ...(target.variables ? { variables: target.variables() } : {}) });

const isConflict = (body: string) => {
  try {
    const { errors } = JSON.parse(body) as { errors?: { extensions?: { code?: string } }[] };
    return errors?.length === 1 && errors[0]!.extensions?.code === 'CONFLICT';
  } catch {
    return false;
  }
};

/** Sends the query once, checks the answer and keeps its exact body as the expected one. */
async function prepare(
  spec: Omit<Target, 'body'>,
  check: (data: Record<string, unknown>) => boolean,
): Promise<Target> {
  const { body } = await graphql(spec.url, spec.query, spec.variables?.(), spec.cookie);
  if (body.errors || !body.data || !check(body.data))
    throw new Error(`${spec.name}: unexpected answer ${JSON.stringify(body)}`);
  return { ...spec, body: JSON.stringify(body) };
}

/** One autocannon run; its latencies come from each response's own timing (the histogram has whole ms). */
async function cannon(target: Target, seconds: number, phase: string, pids: Pids): Promise<Run> {
  const latencies: number[] = [];
  let answered = 0;
  let conflicts = 0;
  let wrong = '';
  const before = { dataServer: await cpuMs(pids.dataServer), edge: await cpuMs(pids.edge) };
  const instance = autocannon({
    title: target.name,
    url: `${target.url}/graphql`,
    connections: CONNECTIONS,
    duration: seconds,
    headers: { 'content-type': 'application/json', cookie: target.cookie },
    // autocannon 9 calls `setupRequest` only for an entry of `requests`, not as a top-level option.
    requests: [
      {
        method: 'POST',
        body: requestBody(target),
        ...(target.variables
          ? { setupRequest: (request: { body?: string }) => ({ ...request, body: requestBody(target) }) }
          : {}),
        onResponse: (status, body) => {
          if (status === 200 && body === target.body) answered++;
          else if (status === 200 && isConflict(body)) conflicts++;
          else wrong ||= `${status} ${body.slice(0, 300)}`;
        },
      },
    ],
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latencies.push(ms);
  });
  const result = await instance;
  const problems = Object.entries({
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    'unexpected answers': result.requests.total - answered - conflicts,
  }).filter(([, count]) => count > 0);
  if (problems.length > 0) {
    failures.push(
      `${target.name} (${phase}): ${problems.map(([what, count]) => `${count} ${what}`).join(', ')}` +
        (wrong ? `; the first: ${wrong}` : ''),
    );
  }
  return {
    answered,
    conflicts,
    seconds: result.duration,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpu: {
      dataServer: (await cpuMs(pids.dataServer)) - before.dataServer,
      edge: (await cpuMs(pids.edge)) - before.edge,
    },
    latencies,
  };
}

/**
 * Warms every target up, then measures them in interleaved rounds (A B C…, A B C…, …), so that
 * drift in the machine's speed touches every target alike. The runs of each target, in round order.
 */
async function measureAll(targets: Target[], pids: Pids): Promise<Run[][]> {
  if (WARMUP > 0) {
    console.log(`Warm-up: ${WARMUP} s per target`);
    for (const target of targets) await cannon(target, WARMUP, 'warm-up', pids);
  }
  const runs = targets.map((): Run[] => []);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [index, target] of targets.entries()) {
      runs[index]!.push(await cannon(target, DURATION, `round ${round}`, pids));
    }
    console.log(
      `Round ${round}/${ROUNDS} req/s: ${runs.map((each) => Math.round(reqPerSec(each.at(-1)!))).join(' | ')}`,
    );
  }
  return runs;
}

/** All runs of a target together: answers over seconds, percentiles over every response, CPU per answer. */
function overall(runs: Run[]) {
  const sum = (of: (run: Run) => number) => runs.reduce((total, run) => total + of(run), 0);
  const latencies = runs.flatMap((run) => run.latencies);
  const answers = sum((run) => run.answered + run.conflicts);
  return {
    reqPerSec: reqPerSec({ answered: sum((run) => run.answered), seconds: sum((run) => run.seconds) }),
    conflictShare: sum((run) => run.conflicts) / answers,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuPerRequest: {
      dataServer: sum((run) => run.cpu.dataServer) / answers,
      edge: sum((run) => run.cpu.edge) / answers,
    },
  };
}

const spread = (values: number[], digits = 0) =>
  `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;

/** A Markdown table as biome formats it: paste into BENCHMARKS.md as is. */
function markdown(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  const rule = line(
    widths.map((width, column) => (column === 0 ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)),
  );
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}

/** `npm run bench`'s collection on a new gateway's store: 1000 documents, 100 per group, and the ring. */
async function seed(url: string, cookie: string) {
  const put = async (query: string, variables: Record<string, unknown>) => {
    const { body } = await graphql(url, query, variables, cookie);
    if (body.errors) throw new Error(`seeding failed: ${JSON.stringify(body)}`);
  };
  for (let i = 0; i < 1000; i++)
    await put(SEED, { data: { group: `g${i % 10}`, rank: i, title: `item ${i}` } });
  // Every write of the ring target replaces a document, as every write of the other one does.
  for (let i = 0; i < RING; i++) await put(PUT, onTheRing());
}

async function main() {
  dataDir = await mkdtemp(join(tmpdir(), 'portico-bench-remote-'));
  console.log(
    `Remote store benchmark: Node ${process.version}, ${cpus().length} cores, ${CONNECTIONS} connections, ` +
      `${WARMUP} s warm-up, then ${ROUNDS} interleaved rounds of ${DURATION} s per target\n`,
  );
  const profiled = async (name: string): Promise<Record<string, string>> => {
    if (!PROFILE_DIR) return {};
    await mkdir(join(PROFILE_DIR, name), { recursive: true });
    return { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(PROFILE_DIR, name)}` };
  };

  const dataServerDir = join(dataDir, 'data-server');
  await mkdir(dataServerDir);
  const dataServer = await startPortico(
    dataServerDir,
    BENCH_CONFIG,
    {
      // Identity and documents in separate files, as in `npm run bench`.
      DATABASE_URL: `sqlite:${join(dataServerDir, 'store.sqlite')}`,
      SYSTEM_DATABASE_URL: `sqlite:${join(dataServerDir, 'system.sqlite')}`,
      ...(await profiled('data-server')),
    },
    (child) => children.push(child),
  );
  const directCookie = await firstAdminCookie(dataServer.url, dataServer.token);
  const key = await graphql(dataServer.url, CREATE_KEY, { name: 'edge' }, directCookie);
  const secret = (key.body.data as { createApiKey?: { secret?: string } } | undefined)?.createApiKey?.secret;
  if (!secret) throw new Error(`createApiKey failed: ${JSON.stringify(key.body)}`);
  // The edge reads and writes the same documents.
  await seed(dataServer.url, directCookie);

  const edgeDir = join(dataDir, 'edge');
  await mkdir(edgeDir);
  const edge = await startPortico(
    edgeDir,
    BENCH_CONFIG,
    {
      DATABASE_URL: `portico+${dataServer.url}`,
      SYSTEM_DATABASE_URL: `sqlite:${join(edgeDir, 'system.sqlite')}`,
      PORTICO_REMOTE_API_KEY: secret,
      ...(await profiled('edge')),
    },
    (child) => children.push(child),
  );
  const edgeCookie = await firstAdminCookie(edge.url, edge.token);

  const isPut = (data: Record<string, unknown>) =>
    (data as { putDocument?: { collection?: string } }).putDocument?.collection === 'items';
  const isPage = (data: Record<string, unknown>) =>
    (data as { documents?: { edges?: unknown[] } }).documents?.edges?.length === 20;
  const direct = { url: dataServer.url, cookie: directCookie };
  const throughEdge = { url: edge.url, cookie: edgeCookie };
  const operations = [
    { name: 'putDocument, one document', query: PUT, variables: onOneDocument, check: isPut },
    { name: 'putDocument, 1000 in turn', query: PUT, variables: onTheRing, check: isPut },
    { name: '20-document index page', query: PAGE, check: isPage },
  ];
  const targets: Target[] = [];
  for (const [where, server] of [
    ['direct', direct],
    ['edge', throughEdge],
  ] as const) {
    for (const { check, ...operation } of operations) {
      targets.push(await prepare({ ...operation, ...server, name: `${operation.name}, ${where}` }, check));
    }
  }
  const pages = targets.filter((target) => target.query === PAGE);
  if (pages[0]!.body !== pages[1]!.body)
    throw new Error('the edge answers the index page differently from the data server');

  const runs = await measureAll(targets, { dataServer: dataServer.child.pid!, edge: edge.child.pid! });
  const totals = runs.map(overall);

  console.log(
    `\n${markdown([
      [
        'target',
        'req/s (rounds)',
        'p50 ms (rounds)',
        'p99 ms (rounds)',
        'CONFLICT',
        'CPU per request: data server + edge',
      ],
      ...targets.map((target, index) => {
        const [each, total] = [runs[index]!, totals[index]!];
        const { dataServer: dataServerCpu, edge: edgeCpu } = total.cpuPerRequest;
        return [
          target.name,
          `${Math.round(total.reqPerSec)} (${spread(each.map(reqPerSec))})`,
          `${total.p50.toFixed(1)} (${spread(
            each.map((run) => run.p50),
            1,
          )})`,
          `${total.p99.toFixed(1)} (${spread(
            each.map((run) => run.p99),
            1,
          )})`,
          `${(total.conflictShare * 100).toFixed(1)} %`,
          target.url === edge.url
            ? `${dataServerCpu.toFixed(2)} + ${edgeCpu.toFixed(2)} ms`
            : `${dataServerCpu.toFixed(2)} ms`,
        ];
      }),
    ])}\n`,
  );

  console.log(
    `${markdown([
      ['operation', 'edge / direct req/s (rounds)', 'goal', 'added p50 ms (rounds)', 'added p99 ms (rounds)'],
      ...operations.map(({ name }, index) => {
        const edgeIndex = index + operations.length;
        const [before, after] = [totals[index]!, totals[edgeIndex]!];
        const ratio = after.reqPerSec / before.reqPerSec;
        const perRound = (of: (direct: Run, throughEdge: Run) => number, digits = 1) =>
          spread(
            runs[index]!.map((run, round) => of(run, runs[edgeIndex]![round]!)),
            digits,
          );
        return [
          name,
          `${ratio.toFixed(2)} × (${perRound((run, edgeRun) => reqPerSec(edgeRun) / reqPerSec(run), 2)})`,
          `>= ${GOAL} ×: ${ratio >= GOAL ? 'met' : 'MISSED'}`,
          `${(after.p50 - before.p50).toFixed(1)} (${perRound((run, edgeRun) => edgeRun.p50 - run.p50)})`,
          `${(after.p99 - before.p99).toFixed(1)} (${perRound((run, edgeRun) => edgeRun.p99 - run.p99)})`,
        ];
      }),
    ])}\n`,
  );

  if (PROFILE_DIR) {
    // SIGTERM: each gateway shuts down gracefully, which writes its profile; the edge first.
    for (const child of children.splice(0).reverse()) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    console.log(`CPU profiles are in ${join(PROFILE_DIR, 'edge')} and ${join(PROFILE_DIR, 'data-server')}`);
  }
  if (failures.length > 0)
    throw new Error(`requests failed:\n${failures.map((failure) => `  - ${failure}`).join('\n')}`);
}

runBenchmark(main, cleanUp);
