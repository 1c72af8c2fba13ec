import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const root = join(import.meta.dirname, '..');
const STARTUP_TIMEOUT_MS = 60_000;

export interface StartedPortico {
  child: ChildProcess;
  url: string;
  /** The bootstrap token it logged, for the first admin. */
  token: string;
}

/**
 * `portico start` (with `options`, such as `--workers 2`) in production mode in a child process,
 * configured only by `config` and `env` (the caller's database and config variables are dropped);
 * resolves once it listens.
 */
export async function startPortico(
  dataDir: string,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
  onSpawn: (child: ChildProcess) => void = () => {},
  options: string[] = [],
): Promise<StartedPortico> {
  await writeFile(join(dataDir, 'portico.config.json'), JSON.stringify(config));
  const { DATABASE_URL, SYSTEM_DATABASE_URL, PORTICO_CONFIG, PORTICO_PUBLIC_URL, ...inherited } = process.env;
  const child = spawn(process.execPath, [join(root, 'bin/portico.ts'), 'start', ...options], {
    cwd: dataDir,
    env: {
      ...inherited,
      NODE_ENV: 'production',
      PORTICO_SECRET: 'bench-secret-that-is-long-enough-0123456789',
      PORTICO_DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: '0',
      // The bootstrap link is logged at info; Portico logs nothing per request at info.
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  onSpawn(child);
  let url: string | undefined;
  let token: string | undefined;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('Portico did not start in time')), STARTUP_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`Portico exited early (${code})`)));
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return;
      }
      if (line.bootstrap === true) token = String(line.msg).match(/token=([\w-]+)/)?.[1];
      if (typeof line.url === 'string' && String(line.msg).startsWith('Portico listening')) url = line.url;
      if (url && token) {
        clearTimeout(timer);
        resolve({ child, url, token });
      }
    });
  });
}

/** One GraphQL request over HTTP, with the session cookie when given. */
export async function graphql(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  cookie = '',
) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return { response, body: (await response.json()) as { data?: Record<string, unknown>; errors?: unknown } };
}

export const BENCH_ADMIN = {
  email: 'bench@example.com',
  password: 'bench horse battery staple',
  name: 'Bench Admin',
};

/** Redeems the bootstrap token as the first admin; returns the session cookie (`name=value`). */
export async function firstAdminCookie(url: string, token: string): Promise<string> {
  const redeemed = await graphql(
    url,
    'mutation ($t: String!, $p: ProfileInput) { redeemToken(token: $t, profile: $p) { user { id } } }',
    { t: token, p: BENCH_ADMIN },
  );
  const cookie = redeemed.response.headers
    .getSetCookie()
    .map((header) => header.split(';')[0]!)
    .find((pair) => pair.startsWith('portico_session='));
  if (!cookie) throw new Error(`redeemToken set no session cookie: ${JSON.stringify(redeemed.body)}`);
  return cookie;
}

/** An API key of the first admin (signed in with `cookie`) that reads and writes blobs, and nothing else. */
export async function blobsApiKey(url: string, cookie: string): Promise<string> {
  const created = await graphql(
    url,
    'mutation { createApiKey(name: "bench", scopes: ["blobs:read", "blobs:write"]) { secret } }',
    {},
    cookie,
  );
  const key = (created.body.data?.createApiKey as { secret: string } | undefined)?.secret;
  if (!key) throw new Error(`createApiKey: ${JSON.stringify(created.body)}`);
  return key;
}

/** Runs a benchmark's `main`, then `cleanUp` (on Ctrl-C too); the exit code says whether it failed. */
export function runBenchmark(main: () => Promise<void>, cleanUp: () => void) {
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });
  main().then(
    () => {
      cleanUp();
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      cleanUp();
      process.exit(1);
    },
  );
}

/** A number from the environment (`name`), or `fallback`: positive, or also 0 when `zeroAllowed`. */
export function positive(name: string, fallback: number, zeroAllowed = false): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) {
    throw new Error(`${name} must be a ${zeroAllowed ? 'non-negative' : 'positive'} number`);
  }
  return value;
}

/** The p-th percentile of `values` (nearest rank); NaN for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** CPU time the process has used, in ms (user + system, from /proc: Linux only). */
export async function cpuMs(pid: number): Promise<number> {
  // Fields 14 and 15 after the parenthesised command name, in clock ticks (100 per second).
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
