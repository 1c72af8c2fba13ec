/**
 * `npm run bench`: starts a raw node:http server, fastify + mercurius, a bare graphql-yoga server and
 * Portico in each store layout (one SQLite file as `npm start` has it, system and store in two SQLite
 * files, PostgreSQL), each in its own child process; drives each with autocannon from this process,
 * and prints req/s and p99 with their ratios to bare yoga `{ hello }` and to mercurius. See
 * BENCHMARKS.md.
 *
 * Environment (all optional): BENCH_ROUNDS (measured rounds, default 3), BENCH_DURATION (seconds per
 * target per round, default 3), BENCH_WARMUP (seconds per target, default 2), BENCH_CONNECTIONS
 * (default 10), BENCH_PROFILE (a folder: every Portico runs with --cpu-prof and writes its profile
 * there), BENCH_ONLY (a regular expression: only the targets whose name it matches run, besides bare
 * yoga and mercurius), BENCH_LAYOUTS (a comma list of default, split, postgres: the Portico layouts
 * to run; all available by default), BENCH_POSTGRES_URL (a PostgreSQL server for the postgres layout,
 * else PORTICO_TEST_POSTGRES_URL; unset, that layout is skipped). Exits non-zero when a run saw
 * errors, timeouts, non-2xx responses or unexpected bodies.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import pg from 'pg';
import { percentile, positive } from './portico.ts';

const root = join(import.meta.dirname, '..');
const ROUNDS = positive('BENCH_ROUNDS', 3);
const DURATION = positive('BENCH_DURATION', 3);
const WARMUP = positive('BENCH_WARMUP', 2, true);
const CONNECTIONS = positive('BENCH_CONNECTIONS', 10);
const PROFILE_DIR = process.env.BENCH_PROFILE ? resolve(process.env.BENCH_PROFILE) : undefined;
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? process.env.PORTICO_TEST_POSTGRES_URL;
/** The issue's target for the authenticated query, as a fraction of bare yoga's req/s. */
const TARGET_RATIO = 0.9;
const STARTUP_TIMEOUT_MS = 30_000;

const ADMIN = { email: 'bench@example.com', password: 'bench horse battery staple', name: 'Bench Admin' };
const REDEEM =
  'mutation ($t: String!, $p: ProfileInput) { redeemToken(token: $t, profile: $p) { user { id } } }';
const HELLO = '{ hello }';
const BASELINE = 'bare yoga { hello }';
const PEER = 'mercurius { hello }, graphql-jit';
const COLLECTION_GOAL = 0.5;
const PAGE =
  '{ documents(collection: "items", index: "byGroup", where: { eq: { group: "g1" } }, first: 20) { edges { node { id data } } } }';
// Every put moves the document within its index (a new rank), so its index entry is rewritten too.
const PUT =
  'mutation ($rank: Int!) { putDocument(collection: "items", id: "bench", data: { group: "g9", rank: $rank, title: "bench" }) { id } }';
// Six digits throughout the run, however long: autocannon keeps the first body's Content-Length.
let puts = 0;
const nextRank = () => 100_000 + (puts++ % 900_000);
/** The collection the benchmark writes and pages through: one two-field index. */
const BENCH_CONFIG = {
  collections: {
    items: { indexes: { byGroup: ['group', 'rank'] }, read: 'authenticated', write: 'authenticated' },
  },
};
const SEEDED_DOCUMENTS = 1000;
const SIGNUP = '{ auth { signup } }';
const ACQUIRE = 'mutation ($key: String!) { acquireLease(key: $key, ttlSeconds: 60) { token } }';
const RELEASE = 'mutation ($key: String!, $token: SafeInt!) { releaseLease(key: $key, token: $token) }';
// Keys cycle through a ring: after the first lap every acquire updates a released row, as a
// long-running service would; 100k keys apart, no two connections ever want the same one.
let leaseCounter = 0;
const nextLeaseKey = () => `bench-${String(leaseCounter++ % 100_000).padStart(6, '0')}`;
const VIEWER = '{ viewer { user { id email } } }';

/** Portico's rows, measured in every layout (but `signup`, which touches no store: in the default one only). */
const ROWS = {
  signup: 'anonymous { auth { signup } }',
  viewer: '{ viewer { user { id email } } } + cookie',
  put: 'putDocument (replace) + cookie',
  page: '20-document index page + cookie',
  lease: 'acquireLease, then releaseLease + cookie',
};
const rowName = (layout: Layout, row: keyof typeof ROWS) => `Portico ${layout.key}: ${ROWS[row]}`;

// ---------------------------------------------------------------- store layouts

interface Layout {
  /** Its name in BENCH_LAYOUTS and in the rows' names. */
  key: 'default' | 'split' | 'postgres';
  description: string;
  /** Portico's database variables for a deployment in `dataDir`. */
  databases(dataDir: string): Promise<Record<string, string>>;
}

const LAYOUTS: Layout[] = [
  {
    key: 'default',
    description:
      'system and store in one SQLite file, portico.sqlite in the data folder (as `npm start` has it)',
    // No database variable at all: only PORTICO_DATA_DIR, as a new user starts.
    databases: async () => ({}),
  },
  {
    key: 'split',
    description: 'system (synchronous=FULL) and store (synchronous=NORMAL, WAL) in two SQLite files',
    // The layout for write-heavy stores: a document write does not wait for an fsync.
    databases: async (dataDir) => ({
      DATABASE_URL: `sqlite:${join(dataDir, 'store.sqlite')}`,
      SYSTEM_DATABASE_URL: `sqlite:${join(dataDir, 'system.sqlite')}`,
    }),
  },
  {
    key: 'postgres',
    description: 'system and store in one fresh PostgreSQL database, dropped at the end',
    databases: async () => ({ DATABASE_URL: await scratchDatabase() }),
  },
];

/** BENCH_LAYOUTS' layouts, or every layout available (PostgreSQL only with a server to use). */
function chosenLayouts(): Layout[] {
  const asked = process.env.BENCH_LAYOUTS?.split(',')
    .map((key) => key.trim())
    .filter(Boolean);
  if (!asked) {
    if (!POSTGRES_URL) {
      console.log(
        'No BENCH_POSTGRES_URL (nor PORTICO_TEST_POSTGRES_URL): the PostgreSQL rows are skipped.\n',
      );
    }
    return LAYOUTS.filter((layout) => layout.key !== 'postgres' || POSTGRES_URL);
  }
  const unknown = asked.filter((key) => !LAYOUTS.some((layout) => layout.key === key));
  if (unknown.length > 0) {
    throw new Error(`BENCH_LAYOUTS: unknown ${unknown.join(', ')} (default, split, postgres)`);
  }
  if (asked.includes('postgres') && !POSTGRES_URL) {
    throw new Error('BENCH_LAYOUTS has postgres: set BENCH_POSTGRES_URL (or PORTICO_TEST_POSTGRES_URL)');
  }
  return LAYOUTS.filter((layout) => asked.includes(layout.key));
}

const scratchDatabases: string[] = [];

async function onPostgres(statement: string) {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** An empty database on the PostgreSQL server, dropped at the end (on failure and Ctrl-C too). */
async function scratchDatabase(): Promise<string> {
  const name = `portico_bench_${process.pid}`;
  await onPostgres(`create database ${name}`);
  scratchDatabases.push(name);
  const url = new URL(POSTGRES_URL!);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropScratchDatabases() {
  for (const name of scratchDatabases.splice(0)) {
    await onPostgres(`drop database if exists ${name} with (force)`);
  }
}

// ---------------------------------------------------------------- child processes

interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Every stdout/stderr line so far, for error reports. */
  readonly output: string[];
  /** Resolves with the first value `match` returns for a JSON line on stdout. */
  waitFor<T>(match: (line: Record<string, unknown>) => T | undefined): Promise<T>;
}

const children: Child[] = [];
const tempDirs: string[] = [];

function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, cwd = root): Child {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const waiters = new Set<(line: Record<string, unknown>) => void>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    output.push(text);
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      return;
    }
    if (line && typeof line === 'object') {
      for (const waiter of waiters) waiter(line as Record<string, unknown>);
    }
  });
  createInterface({ input: child.stderr! }).on('line', (text) => output.push(text));
  const exited = once(child, 'exit');
  const entry: Child = {
    name,
    process: child,
    output,
    waitFor(match) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${name}: not ready after ${STARTUP_TIMEOUT_MS} ms\n${output.join('\n')}`));
        }, STARTUP_TIMEOUT_MS);
        const waiter = (line: Record<string, unknown>) => {
          const value = match(line);
          if (value === undefined) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          resolve(value);
        };
        waiters.add(waiter);
        exited.then(([code, signal]) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited early (${signal ?? code})\n${output.join('\n')}`));
        });
      });
    },
  };
  children.push(entry);
  return entry;
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** SIGTERM (Portico shuts down gracefully, which also writes a --cpu-prof profile), SIGKILL after 5 s. */
async function stopChildren() {
  await Promise.all(
    children.splice(0).map(async ({ process: child }) => {
      if (!running(child)) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }),
  );
}

function removeTempDirs() {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

const listeningUrl = (line: Record<string, unknown>) =>
  typeof line.listening === 'string' ? line.listening : undefined;

// ---------------------------------------------------------------- HTTP helpers

const JSON_HEADERS = { 'content-type': 'application/json' };

async function post(url: string, query: string, variables?: Record<string, unknown>, cookie?: string) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...(cookie ? { cookie } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${query}: HTTP ${response.status} ${text}`);
  return { response, text, json: JSON.parse(text) as { data?: Record<string, unknown>; errors?: unknown } };
}

/** A JSON body padded with spaces to one length: autocannon keeps the first body's Content-Length. */
const fixedLength = (body: unknown) => JSON.stringify(body).padEnd(240);

// ---------------------------------------------------------------- measuring

/** One request of a sequence: its body from the connection's context, and a check of its answer. */
interface Step {
  body(context: Record<string, unknown>): string;
  ok(answer: string, context: Record<string, unknown>): boolean;
}

interface TargetSpec {
  name: string;
  url: string;
  query: string;
  cookie?: string;
  /** Requests that depend on each other (acquire, then release with its token), sent in turn on every connection. */
  sequence?: Step[];
  /** Fresh variables for every request (a write that really changes the document each time). */
  variables?: () => Record<string, unknown>;
  /** What the one request sent before the runs must answer. */
  check(data: Record<string, unknown>): boolean;
}

interface Target extends TargetSpec {
  /** Every response body must equal this (autocannon counts others as mismatches, which fail the run). */
  body: string;
}

interface Measurement {
  target: Target;
  /** Total requests over total seconds of the measured runs. */
  reqPerSec: number;
  /** Each measured run's req/s, for the spread. */
  rounds: number[];
  /** From each response's own timing, over all measured runs (autocannon's histogram has whole ms). */
  p99Ms: number;
}

/** Sends the query once, checks the answer, and keeps its exact body as the expected one. */
async function prepare(spec: TargetSpec): Promise<Target> {
  if (spec.sequence) {
    const context = {};
    for (const step of spec.sequence) {
      const response = await fetch(`${spec.url}/graphql`, {
        method: 'POST',
        headers: { ...JSON_HEADERS, ...(spec.cookie ? { cookie: spec.cookie } : {}) },
        body: step.body(context),
      });
      const answer = await response.text();
      if (!step.ok(answer, context)) throw new Error(`${spec.name}: unexpected answer ${answer}`);
    }
    return { ...spec, body: '' };
  }
  const { text, json } = await post(spec.url, spec.query, spec.variables?.(), spec.cookie);
  if (json.errors || !json.data || !spec.check(json.data)) {
    throw new Error(`${spec.name}: unexpected answer ${text}`);
  }
  return { ...spec, body: text };
}

const failures: string[] = [];

async function cannon(target: Target, seconds: number, phase: string) {
  const latencies: number[] = [];
  let wrongAnswers = 0;
  let firstWrongAnswer = '';
  const wrong = (status: number, answer: string) => {
    if (wrongAnswers++ === 0) firstWrongAnswer = `${status} ${answer.slice(0, 300)}`;
  };
  const sequence = target.sequence?.map((step) => ({
    method: 'POST' as const,
    setupRequest: (request: { body?: string }, context: Record<string, unknown>) => ({
      ...request,
      body: step.body(context),
    }),
    onResponse: (status: number, answer: string, context: Record<string, unknown>) => {
      if (status !== 200 || !step.ok(answer, context)) wrong(status, answer);
    },
  }));
  const instance = autocannon({
    title: target.name,
    url: `${target.url}/graphql`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    headers: { ...JSON_HEADERS, ...(target.cookie ? { cookie: target.cookie } : {}) },
    // With `variables`, every body has the same length as this first one (see PUT).
    body: JSON.stringify({
      query: target.query,
      ...(target.variables ? { variables: target.variables() } : {}),
    }),
    ...(sequence
      ? { requests: sequence }
      : target.variables
        ? {
            // autocannon 9 calls `setupRequest` only for an entry of `requests`, not as a top-level
            // option (there, every put really carries a new rank); such entries check their own answers.
            requests: [
              {
                method: 'POST',
                setupRequest: (request: { body?: string }) => ({
                  ...request,
                  body: JSON.stringify({ query: target.query, variables: target.variables!() }),
                }),
                onResponse: (status: number, answer: string) => {
                  if (status !== 200 || answer !== target.body) wrong(status, answer);
                },
              },
            ],
          }
        : { expectBody: target.body }),
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latencies.push(ms);
  });
  const result = await instance;
  const problems = Object.entries({
    'wrong answers': wrongAnswers,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    mismatches: result.mismatches,
  }).filter(([, count]) => count > 0);
  if (problems.length > 0) {
    failures.push(
      `${target.name} (${phase}): ${problems.map(([what, count]) => `${count} ${what}`).join(', ')}; ` +
        `status codes ${JSON.stringify(result.statusCodeStats)}` +
        (firstWrongAnswer ? `; the first wrong answer: ${firstWrongAnswer}` : ''),
    );
  }
  return { result, latencies };
}

/**
 * Warms every target up, then measures them in interleaved rounds (A B C D, A B C D, ...), so that
 * drift in the machine's speed during the run touches every target alike.
 */
async function measureAll(targets: Target[]): Promise<Measurement[]> {
  if (WARMUP > 0) {
    console.log(`Warm-up: ${WARMUP} s per target`);
    for (const target of targets) await cannon(target, WARMUP, 'warm-up');
  }
  const totals = targets.map(() => ({
    requests: 0,
    seconds: 0,
    rounds: [] as number[],
    latencies: [] as number[],
  }));
  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    for (const [index, target] of targets.entries()) {
      const { result, latencies } = await cannon(target, DURATION, `round ${round}`);
      const total = totals[index]!;
      total.requests += result.requests.total;
      total.seconds += result.duration;
      total.rounds.push(result.requests.total / result.duration);
      for (const latency of latencies) total.latencies.push(latency);
      line.push(Math.round(result.requests.total / result.duration).toString());
    }
    console.log(`Round ${round}/${ROUNDS} req/s: ${line.join(' | ')}`);
  }
  return targets.map((target, index) => {
    const total = totals[index]!;
    return {
      target,
      reqPerSec: total.requests / total.seconds,
      rounds: total.rounds,
      p99Ms: percentile(total.latencies, 99),
    };
  });
}

function table(measurements: Measurement[], baseline: Measurement, peer: Measurement): string {
  const ratio = (value: number, of: number) => `${(value / of).toFixed(2)} ×`;
  const rows = [
    [
      'server / query',
      'req/s',
      'rounds (min–max)',
      'p99 ms',
      'req/s vs yoga',
      'p99 vs yoga',
      'req/s vs mercurius',
      'p99 vs mercurius',
    ],
    ...measurements.map(({ target, reqPerSec, rounds, p99Ms }) => [
      target.name,
      Math.round(reqPerSec).toString(),
      `${Math.round(Math.min(...rounds))}–${Math.round(Math.max(...rounds))}`,
      p99Ms.toFixed(2),
      ratio(reqPerSec, baseline.reqPerSec),
      ratio(p99Ms, baseline.p99Ms),
      ratio(reqPerSec, peer.reqPerSec),
      ratio(p99Ms, peer.p99Ms),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  // Markdown, as biome formats it: paste into BENCHMARKS.md as is.
  const rule = line(
    widths.map((width, column) => (column === 0 ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)),
  );
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------- Portico

interface PorticoUnderTest {
  layout: Layout;
  url: string;
  cookie: string;
}

/**
 * `portico start` (through bin/portico.js, as `npm start`) in a fresh data folder, configured only by
 * BENCH_CONFIG and the layout's database variables; then the first admin's session and the seeded
 * collection.
 */
async function startPortico(layout: Layout): Promise<PorticoUnderTest> {
  const dataDir = await mkdtemp(join(tmpdir(), `portico-bench-${layout.key}-`));
  tempDirs.push(dataDir);
  await writeFile(join(dataDir, 'portico.config.json'), JSON.stringify(BENCH_CONFIG));
  const { DATABASE_URL, SYSTEM_DATABASE_URL, PORTICO_CONFIG, PORTICO_PUBLIC_URL, ...inherited } = process.env;
  const portico = startChild(
    `Portico ${layout.key}`,
    [
      ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
      join(root, 'bin/portico.js'),
      'start',
    ],
    {
      ...inherited,
      NODE_ENV: 'production',
      PORTICO_SECRET: 'bench-secret-that-is-long-enough-0123456789',
      PORTICO_DATA_DIR: dataDir,
      ...(await layout.databases(dataDir)),
      HOST: '127.0.0.1',
      PORT: '0',
      // The bootstrap link is logged at info; Portico logs nothing per request at info.
      LOG_LEVEL: 'info',
    },
    dataDir,
  );
  const [url, token] = await Promise.all([
    portico.waitFor((line) =>
      typeof line.url === 'string' && String(line.msg).startsWith('Portico listening') ? line.url : undefined,
    ),
    portico.waitFor((line) =>
      line.bootstrap === true ? String(line.msg).match(/\/auth\/redeem\?token=([\w-]+)/)?.[1] : undefined,
    ),
  ]);

  // Create the first admin through the bootstrap link and keep the session cookie.
  const redeemed = await post(url, REDEEM, { t: token, p: ADMIN });
  if (redeemed.json.errors) throw new Error(`${portico.name}: redeemToken failed: ${redeemed.text}`);
  const cookie = redeemed.response.headers
    .getSetCookie()
    .map((header) => header.split(';')[0]!)
    .find((pair) => pair.startsWith('portico_session='));
  if (!cookie) throw new Error(`${portico.name}: redeemToken set no portico_session cookie`);

  // 1000 documents, 100 per group, for the index page; ten writes in flight.
  let next = 0;
  const writer = async () => {
    for (let i = next++; i < SEEDED_DOCUMENTS; i = next++) {
      const seeded = await post(
        url,
        'mutation ($data: JSONObject!) { putDocument(collection: "items", data: $data) { id } }',
        { data: { group: `g${i % 10}`, rank: i, title: `item ${i}` } },
        cookie,
      );
      if (seeded.json.errors) throw new Error(`${portico.name}: seeding failed: ${seeded.text}`);
    }
  };
  await Promise.all(Array.from({ length: 10 }, writer));
  return { layout, url, cookie };
}

type Data = Record<string, unknown>;
const hello = (data: Data) => data.hello === 'world';
const viewerEmail = (data: Data) => (data as { viewer?: { user?: { email?: string } } }).viewer?.user?.email;

function porticoSpecs({ layout, url, cookie }: PorticoUnderTest): TargetSpec[] {
  return [
    ...(layout.key === 'default'
      ? [
          {
            name: rowName(layout, 'signup'),
            url,
            query: SIGNUP,
            check: (data: Data) => typeof (data as { auth?: { signup?: unknown } }).auth?.signup === 'string',
          },
        ]
      : []),
    {
      name: rowName(layout, 'viewer'),
      url,
      query: VIEWER,
      cookie,
      check: (data) => viewerEmail(data) === ADMIN.email,
    },
    {
      name: rowName(layout, 'put'),
      url,
      query: PUT,
      variables: () => ({ rank: nextRank() }),
      cookie,
      check: (data) => (data as { putDocument?: { id?: string } }).putDocument?.id === 'bench',
    },
    {
      name: rowName(layout, 'page'),
      url,
      query: PAGE,
      cookie,
      check: (data) => (data as { documents?: { edges?: unknown[] } }).documents?.edges?.length === 20,
    },
    {
      name: rowName(layout, 'lease'),
      url,
      query: ACQUIRE,
      cookie,
      check: () => true,
      sequence: [
        {
          body: (context) => {
            context.key = nextLeaseKey();
            return fixedLength({ query: ACQUIRE, variables: { key: context.key } });
          },
          ok: (answer, context) => {
            context.token = (
              JSON.parse(answer) as { data?: { acquireLease?: { token?: number } } }
            ).data?.acquireLease?.token;
            return typeof context.token === 'number';
          },
        },
        {
          body: (context) =>
            fixedLength({ query: RELEASE, variables: { key: context.key, token: context.token } }),
          ok: (answer) => answer === '{"data":{"releaseLease":true}}',
        },
      ],
    },
  ];
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const layouts = chosenLayouts();
  console.log(
    `Portico benchmark: Node ${process.version}, ${cpus().length} cores, ${CONNECTIONS} connections, ` +
      `${WARMUP} s warm-up, then ${ROUNDS} interleaved rounds of ${DURATION} s per target\n` +
      layouts.map((layout) => `  Portico ${layout.key}: ${layout.description}\n`).join(''),
  );

  const raw = startChild('raw node:http', [join(root, 'bench/servers/raw.ts')], process.env);
  const production = { ...process.env, NODE_ENV: 'production' };
  const mercurius = startChild('mercurius', [join(root, 'bench/servers/mercurius.ts')], production);
  const yoga = startChild('bare yoga', [join(root, 'bench/servers/yoga.ts')], production);
  const [rawUrl, mercuriusUrl, [yogaUrl, unlimitedYogaUrl], porticos] = await Promise.all([
    raw.waitFor(listeningUrl),
    mercurius.waitFor(listeningUrl),
    yoga.waitFor((line) =>
      typeof line.listening === 'string' && typeof line.unlimited === 'string'
        ? ([line.listening, line.unlimited] as const)
        : undefined,
    ),
    Promise.all(layouts.map(startPortico)),
  ]);

  const specs: TargetSpec[] = [
    { name: 'raw node:http (reference)', url: rawUrl, query: HELLO, check: hello },
    { name: PEER, url: mercuriusUrl, query: HELLO, check: hello },
    { name: BASELINE, url: yogaUrl, query: HELLO, check: hello },
    {
      name: 'bare yoga { hello }, maxRequestBodySize: false (reference)',
      url: unlimitedYogaUrl,
      query: HELLO,
      check: hello,
    },
    {
      name: 'bare yoga { viewer { user { id email } } } (reference)',
      url: yogaUrl,
      query: VIEWER,
      check: (data) => viewerEmail(data) === 'bench@example.com',
    },
    ...porticos.flatMap(porticoSpecs),
  ];
  const targets: Target[] = [];
  for (const spec of specs) {
    if (!ONLY || spec.name === BASELINE || spec.name === PEER || ONLY.test(spec.name)) {
      targets.push(await prepare(spec));
    }
  }

  const measurements = await measureAll(targets);
  const named = (name: string) => measurements.find(({ target }) => target.name === name);
  const baseline = named(BASELINE)!;
  console.log(`\n${table(measurements, baseline, named(PEER)!)}\n`);
  const goals: [string, keyof typeof ROWS, number, number][] = [
    ['Authenticated query', 'viewer', 1, TARGET_RATIO],
    ['putDocument', 'put', 1, COLLECTION_GOAL],
    ['Index page', 'page', 1, COLLECTION_GOAL],
    // Its req/s counts both requests of a pair.
    ['Lease acquire+release pairs', 'lease', 2, COLLECTION_GOAL],
  ];
  for (const layout of layouts) {
    for (const [label, row, requestsEach, goal] of goals) {
      const measured = named(rowName(layout, row));
      if (!measured) continue;
      const ratio = measured.reqPerSec / requestsEach / baseline.reqPerSec;
      console.log(
        `${layout.key}: ${label}: ${ratio.toFixed(2)} × bare yoga req/s (target >= ${goal} ×): ${ratio >= goal ? 'met' : 'MISSED'}`,
      );
    }
  }

  for (const child of children)
    if (!running(child.process)) failures.push(`${child.name} exited during the run`);
  if (failures.length > 0) {
    console.error(`\nFAILED:\n${failures.map((failure) => `  - ${failure}`).join('\n')}`);
    return 1;
  }
  return 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const { process: child } of children) if (running(child)) child.kill('SIGKILL');
    removeTempDirs();
    dropScratchDatabases().finally(() => process.exit(130));
  });
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`\nbench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  await stopChildren();
  removeTempDirs();
  await dropScratchDatabases();
}
if (PROFILE_DIR) console.log(`Portico's CPU profiles are in ${PROFILE_DIR}`);
