/**
 * `npm run bench`: starts a raw node:http server, a bare graphql-yoga `{ hello }` server and Portico
 * (SQLite, production mode), each in its own child process, drives each with autocannon from this
 * process, and prints req/s and p99 with their ratios to bare yoga. See BENCHMARKS.md.
 *
 * Environment (all optional): BENCH_DURATION (seconds per measured run, default 10),
 * BENCH_WARMUP (seconds per warm-up run, default 3), BENCH_CONNECTIONS (default 10).
 * Exits non-zero when a run saw errors, timeouts, non-2xx responses or unexpected bodies.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon, { type Result } from 'autocannon';

const root = join(import.meta.dirname, '..');
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
/** The issue's target for the authenticated query, as a fraction of bare yoga's req/s. */
const TARGET_RATIO = 0.9;
const STARTUP_TIMEOUT_MS = 30_000;

const ADMIN = { email: 'bench@example.com', password: 'bench horse battery staple', name: 'Bench Admin' };
const REDEEM = `mutation ($t: String!, $p: ProfileInput) {
  redeemToken(token: $t, profile: $p) { user { id } }
}`;
const HELLO = '{ hello }';
const SIGNUP = '{ auth { signup } }';
const VIEWER = '{ viewer { user { id email } } }';

// ---------------------------------------------------------------- child processes

interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Every stdout/stderr line so far, for error reports. */
  readonly output: string[];
  /** Resolves with the first JSON stdout line that `match` accepts. */
  waitFor<T>(match: (line: Record<string, unknown>) => T | undefined): Promise<T>;
}

const children: Child[] = [];

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
    if (line && typeof line === 'object') for (const waiter of waiters) waiter(line as Record<string, unknown>);
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

async function stopChildren() {
  await Promise.all(
    children.splice(0).map(async ({ process: child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }),
  );
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

/** Sends the query once, checks the answer, and returns the exact body every benchmarked response must match. */
async function expectedBody(
  url: string,
  query: string,
  check: (data: Record<string, unknown>) => boolean,
  cookie?: string,
): Promise<string> {
  const { text, json } = await post(url, query, undefined, cookie);
  if (json.errors || !json.data || !check(json.data)) throw new Error(`${query}: unexpected answer ${text}`);
  return text;
}

// ---------------------------------------------------------------- measuring

interface Target {
  name: string;
  url: string;
  query: string;
  headers?: Record<string, string>;
  /** Every response body must equal this (checked by autocannon: mismatches fail the run). */
  body: string;
}

interface Measurement {
  target: Target;
  result: Result;
  reqPerSec: number;
  /** From each response's own timing (autocannon's histogram rounds to whole milliseconds). */
  p99Ms: number;
}

const failures: string[] = [];

async function cannon(target: Target, seconds: number, phase: string) {
  const latencies: number[] = [];
  const instance = autocannon({
    title: target.name,
    url: `${target.url}/graphql`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    headers: { ...JSON_HEADERS, ...target.headers },
    body: JSON.stringify({ query: target.query }),
    expectBody: target.body,
  });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => latencies.push(ms));
  const result = await instance;
  const problems = Object.entries({
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    mismatches: result.mismatches,
  }).filter(([, count]) => count > 0);
  if (problems.length > 0) {
    failures.push(
      `${target.name} (${phase}): ${problems.map(([what, count]) => `${count} ${what}`).join(', ')}; ` +
        `status codes ${JSON.stringify(result.statusCodeStats)}`,
    );
  }
  return { result, latencies };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(target: Target): Promise<Measurement> {
  process.stdout.write(`  ${target.name}: warm-up ${WARMUP} s, measuring ${DURATION} s ... `);
  if (WARMUP > 0) await cannon(target, WARMUP, 'warm-up');
  const { result, latencies } = await cannon(target, DURATION, 'measured');
  const measurement = {
    target,
    result,
    reqPerSec: result.requests.total / result.duration,
    p99Ms: percentile(latencies, 99),
  };
  process.stdout.write(`${Math.round(measurement.reqPerSec)} req/s\n`);
  return measurement;
}

function table(measurements: Measurement[], baseline: Measurement): string {
  const rows = [
    ['server / query', 'req/s', 'p99 ms', 'req/s vs yoga', 'p99 vs yoga'],
    ...measurements.map(({ target, reqPerSec, p99Ms }) => [
      target.name,
      Math.round(reqPerSec).toString(),
      p99Ms.toFixed(2),
      `${(reqPerSec / baseline.reqPerSec).toFixed(2)} ×`,
      `${(p99Ms / baseline.p99Ms).toFixed(2)} ×`,
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  const rule = `|${widths.map((width, column) => `${'-'.repeat(width + 1)}${column === 0 ? '-' : ':'}`).join('|')}|`;
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'portico-bench-'));
  try {
    console.log(
      `Portico benchmark: Node ${process.version}, ${cpus().length} cores, ${CONNECTIONS} connections, ` +
        `${WARMUP} s warm-up + ${DURATION} s per run\n`,
    );
    const raw = startChild('raw node:http', [join(root, 'bench/servers/raw.ts')], process.env);
    const yoga = startChild('bare yoga', [join(root, 'bench/servers/yoga.ts')], {
      ...process.env,
      NODE_ENV: 'production',
    });
    const { DATABASE_URL, SYSTEM_DATABASE_URL, PORTICO_CONFIG, PORTICO_PUBLIC_URL, ...inherited } = process.env;
    const portico = startChild(
      'Portico',
      [join(root, 'bin/portico.ts'), 'start'],
      {
        ...inherited,
        NODE_ENV: 'production',
        PORTICO_SECRET: 'bench-secret-that-is-long-enough-0123456789',
        PORTICO_DATA_DIR: dataDir,
        DATABASE_URL: `sqlite:${join(dataDir, 'portico.sqlite')}`,
        HOST: '127.0.0.1',
        PORT: '0',
        // Info level: the bootstrap link is logged at info; Portico logs nothing per request.
        LOG_LEVEL: 'info',
      },
      dataDir, // no portico.config.* is picked up from the working directory
    );
    const bootstrapToken = portico.waitFor((line) =>
      line.bootstrap === true ? String(line.msg).match(/\/auth\/redeem\?token=([\w-]+)/)?.[1] : undefined,
    );
    const [rawUrl, yogaUrl, porticoUrl, token] = await Promise.all([
      raw.waitFor(listeningUrl),
      yoga.waitFor(listeningUrl),
      portico.waitFor((line) =>
        typeof line.url === 'string' && String(line.msg).startsWith('Portico listening') ? line.url : undefined,
      ),
      bootstrapToken,
    ]);

    // Sign in as the first admin and keep the session cookie.
    const redeemed = await post(porticoUrl, REDEEM, { t: token, p: ADMIN });
    if (redeemed.json.errors) throw new Error(`redeemToken failed: ${redeemed.text}`);
    const sessionCookie = redeemed.response.headers
      .getSetCookie()
      .map((header) => header.split(';')[0]!)
      .find((pair) => pair.startsWith('portico_session='));
    if (!sessionCookie) throw new Error('redeemToken set no portico_session cookie');

    const hello = (data: Record<string, unknown>) => (data as { hello?: string }).hello === 'world';
    const targets: Target[] = [
      { name: 'raw node:http (reference)', url: rawUrl, query: HELLO, body: '' },
      { name: 'bare yoga { hello }', url: yogaUrl, query: HELLO, body: '' },
      { name: 'Portico anonymous { auth { signup } }', url: porticoUrl, query: SIGNUP, body: '' },
      {
        name: 'Portico { viewer { user { id email } } } + cookie',
        url: porticoUrl,
        query: VIEWER,
        headers: { cookie: sessionCookie },
        body: '',
      },
    ];
    const [rawTarget, yogaTarget, signupTarget, viewerTarget] = targets as [Target, Target, Target, Target];
    rawTarget.body = await expectedBody(rawUrl, HELLO, hello);
    yogaTarget.body = await expectedBody(yogaUrl, HELLO, hello);
    signupTarget.body = await expectedBody(
      porticoUrl,
      SIGNUP,
      (data) => typeof (data as { auth?: { signup?: unknown } }).auth?.signup === 'string',
    );
    viewerTarget.body = await expectedBody(
      porticoUrl,
      VIEWER,
      (data) => (data as { viewer?: { user?: { email?: string } } }).viewer?.user?.email === ADMIN.email,
      sessionCookie,
    );

    const measurements: Measurement[] = [];
    for (const target of targets) measurements.push(await measure(target));
    const baseline = measurements[1]!;
    const authenticated = measurements[3]!;

    console.log(`\n${table(measurements, baseline)}\n`);
    const ratio = authenticated.reqPerSec / baseline.reqPerSec;
    console.log(
      `Authenticated query: ${ratio.toFixed(2)} × bare yoga (target >= ${TARGET_RATIO} ×): ` +
        `${ratio >= TARGET_RATIO ? 'met' : 'MISSED'}`,
    );
    const crashed = children.filter(({ process: child }) => child.exitCode !== null);
    for (const child of crashed) failures.push(`${child.name} exited during the run`);
    if (failures.length > 0) {
      console.error(`\nFAILED:\n${failures.map((failure) => `  - ${failure}`).join('\n')}`);
      return 1;
    }
    return 0;
  } finally {
    await stopChildren();
    await rm(dataDir, { recursive: true, force: true });
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const { process: child } of children) child.kill('SIGKILL');
    process.exit(130);
  });
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`\nbench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
