/**
 * `npm run bench:backup`: `portico backup`, `verify` and `restore` of a deployment with 100k
 * documents and 1 GiB of blobs, each timed against a floor measured in the same run: on SQLite,
 * SQLite's own `.backup` of the database file plus a `tar` of the blob folder (and back: the copy
 * put in place plus `tar x`); on PostgreSQL, `pg_dump -Fc` plus the `tar` (and back: `pg_restore`
 * into a fresh database plus `tar x`). The commands run as child processes under /usr/bin/time for
 * their peak RSS. Goals: each within 2 × its floor, peak RSS < 128 MiB. See BENCHMARKS.md, "Backups".
 *
 * Environment (all optional): BENCH_BACKUP_DOCS (default 100000), BENCH_BACKUP_BLOB_MIB (default
 * 1024, in blobs of 16 MiB), BENCH_BACKUP_ROUNDS (default 3; the figures are the medians),
 * BENCH_BACKUP_DIR (where the files go; default the system's temp folder, which needs about 5 times
 * the blob size free), BENCH_BACKUP_POSTGRES_URL (a PostgreSQL server: the deployments then keep
 * their databases there, in scratch databases created and dropped by the bench, instead of the
 * default SQLite file in the data folder). Exits non-zero when a command fails or a restore does
 * not bring back what the backup took; a missed goal is reported but does not fail the run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { definitions } from '../modules/collections/config.ts';
import { builtinModules } from '../modules/index.ts';
import { loadConfig } from '../src/load-config.ts';
import { composeModules } from '../src/module.ts';
import { closeRuntime, openRuntime } from '../src/open-runtime.ts';
import { blobsApiKey, firstAdminCookie, graphql, positive, startPortico } from './portico.ts';

const root = join(import.meta.dirname, '..');
const MIB = 1024 * 1024;
const BLOB_MIB = 16;
const DOCUMENTS = positive('BENCH_BACKUP_DOCS', 100_000);
const BLOBS = Math.ceil(positive('BENCH_BACKUP_BLOB_MIB', 1024) / BLOB_MIB);
const ROUNDS = positive('BENCH_BACKUP_ROUNDS', 3);
const BASE_DIR = process.env.BENCH_BACKUP_DIR ?? tmpdir();
const POSTGRES_URL = process.env.BENCH_BACKUP_POSTGRES_URL;
const USERS = 10;
const SECRET = 'bench-secret-that-is-long-enough-0123456789';
const TIME_GOAL = 2;
const RSS_GOAL_MIB = 128;
const CONFIG = {
  signup: 'open',
  rateLimits: { signUps: 1000 },
  blobs: { maxBytes: 2 * BLOB_MIB * MIB },
  collections: {
    items: {
      indexes: { byGroup: ['group', 'rank'], bySlug: { fields: ['slug'], unique: true } },
      read: 'authenticated',
      write: 'authenticated',
    },
  },
};

let gateway: ChildProcess | undefined;
let workDir: string | undefined;
const scratchDatabases: string[] = [];

// ---------------------------------------------------------------- deployments

interface Deployment {
  dataDir: string;
  /** DATABASE_URL, or none for the default SQLite file in the data folder. */
  databaseUrl?: string;
}

const sqliteFile = (deployment: Deployment) => join(deployment.dataDir, 'portico.sqlite');
const blobFolder = (deployment: Deployment) => join(deployment.dataDir, 'blobs');
const envOf = (deployment: Deployment): Record<string, string> => ({
  NODE_ENV: 'production',
  PORTICO_SECRET: SECRET,
  PORTICO_DATA_DIR: deployment.dataDir,
  ...(deployment.databaseUrl ? { DATABASE_URL: deployment.databaseUrl } : {}),
});

async function postgres<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** An empty scratch database on the PostgreSQL server, dropped at the end. */
async function scratchDatabase(): Promise<string> {
  const name = `portico_bench_backup_${process.pid}_${scratchDatabases.length}`;
  await postgres((client) => client.query(`create database ${name}`));
  scratchDatabases.push(name);
  const url = new URL(POSTGRES_URL!);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase(url: string) {
  const name = new URL(url).pathname.slice(1);
  await postgres((client) => client.query(`drop database if exists ${name} with (force)`));
  scratchDatabases.splice(scratchDatabases.indexOf(name), 1);
}

/** A data folder with the configuration (and, on PostgreSQL, an empty database): nothing else yet. */
async function emptyDeployment(name: string): Promise<Deployment> {
  const dataDir = join(workDir!, name);
  await mkdir(dataDir);
  await writeFile(join(dataDir, 'portico.config.json'), JSON.stringify(CONFIG));
  return { dataDir, ...(POSTGRES_URL ? { databaseUrl: await scratchDatabase() } : {}) };
}

async function dropDeployment(deployment: Deployment) {
  if (deployment.databaseUrl) await dropDatabase(deployment.databaseUrl);
  await rm(deployment.dataDir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- populating the source

const WORDS =
  'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(
    ' ',
  );

/** A document of about 300 bytes of JSON, varied so that it compresses like real data rather than like a constant. */
function documentData(i: number) {
  const word = (k: number) => WORDS[(i * 7 + k * 13) % WORDS.length]!;
  const summary = Array.from({ length: 12 + (i % 20) }, (_, k) => word(k)).join(' ');
  return {
    group: `g${String(i % 100).padStart(2, '0')}`,
    rank: i,
    slug: `item-${i.toString(36)}-${word(3)}`,
    title: `${word(1)} ${word(2)} ${i}`,
    summary,
    tags: [word(4), word(5), word(6)],
    price: Math.round(((i * 7919) % 100_000) / 3) / 100,
    stock: (i * 31) % 500,
    published: i % 3 !== 0,
    updatedBy: `user-${i % USERS}`,
  };
}

/**
 * The documents go in through the store's own write path (`runtime.store.documents.write`: the
 * document row and its index entries), in this process. On SQLite the connection skips fsync while
 * it populates (`synchronous = OFF`, this connection only): populating is not what is measured,
 * and it takes 100k commits a third of the time. The file is closed (checkpointed) afterwards.
 */
async function populateDocuments(deployment: Deployment) {
  const loaded = await loadConfig({ cwd: deployment.dataDir, env: envOf(deployment), builtinModules });
  const runtime = await openRuntime(
    { ...loaded, modules: composeModules(loaded.modules) },
    pino({ level: 'warn' }),
  );
  try {
    await runtime.serveStore();
    if (runtime.db.system.dialect === 'sqlite') {
      await runtime.db.system.em.getConnection().execute('pragma synchronous = OFF');
    }
    const items = definitions(runtime.settings).get('items')!;
    // PostgreSQL commits in parallel; SQLite has one writer.
    const writers = POSTGRES_URL ? 8 : 1;
    let next = 0;
    await Promise.all(
      Array.from({ length: writers }, async () => {
        for (let i = next++; i < DOCUMENTS; i = next++) {
          const data = documentData(i);
          await runtime.store.documents.write({
            collection: items,
            id: `item-${String(i).padStart(7, '0')}`,
            ownerOfNew: null,
            expectedVersion: 0,
            body: { data, text: JSON.stringify(data) },
          });
        }
      }),
    );
  } finally {
    await closeRuntime(runtime);
  }
}

/** One upload through `POST /blobs`, streaming `bytes` with its Content-Length. */
function upload(url: string, key: string, bytes: Buffer) {
  return new Promise<void>((resolve, reject) => {
    const sending = request(`${url}/blobs?filename=bench.bin`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length),
      },
    });
    sending.on('response', async (response) => {
      let body = '';
      for await (const chunk of response) body += chunk;
      if (response.statusCode === 201) resolve();
      else reject(new Error(`upload: HTTP ${response.statusCode} ${body}`));
    });
    sending.on('error', reject);
    sending.end(bytes);
  });
}

/**
 * Users, sessions and blobs go in through a running gateway: the first admin (bootstrap link), an
 * API key, USERS sign-ups (a session each) and a second sign-in each, then the blobs, each of
 * fresh random bytes (so each is a content of its own), through the real upload route.
 */
async function populateThroughGateway(deployment: Deployment) {
  const { url, token } = await startPortico(deployment.dataDir, CONFIG, envOf(deployment), (child) => {
    gateway = child;
  });
  const cookie = await firstAdminCookie(url, token);
  const key = await blobsApiKey(url, cookie);
  const credentials = { password: 'bench horse battery staple' };
  for (let i = 0; i < USERS; i++) {
    const email = `user-${i}@example.com`;
    for (const [query, variables] of [
      [
        'mutation ($input: SignUpInput!) { signUp(input: $input) { user { id } } }',
        { input: { email, ...credentials } },
      ],
      [
        'mutation ($email: String!, $password: String!) { logIn(email: $email, password: $password) { user { id } } }',
        { email, ...credentials },
      ],
    ] as const) {
      const answer = await graphql(url, query, variables);
      if (answer.body.errors) throw new Error(`${query}: ${JSON.stringify(answer.body.errors)}`);
    }
  }
  for (let i = 0; i < BLOBS; i++) await upload(url, key, randomBytes(BLOB_MIB * MIB));
  const exited = once(gateway!, 'exit');
  gateway!.kill('SIGTERM');
  await exited;
  gateway = undefined;
}

// ---------------------------------------------------------------- timed runs

interface Timed {
  seconds: number;
  /** Peak resident set, bytes (/usr/bin/time's %M: the largest of the process and its waited-for children). */
  rss: number;
  stdout: string;
}

/** Runs `command` under /usr/bin/time; throws with its output when it fails. */
async function timed(command: string[], cwd: string, env: Record<string, string> = {}): Promise<Timed> {
  const rssFile = join(workDir!, 'rss.txt');
  const start = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, ...command], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (code !== 0) throw new Error(`${command.join(' ')} exited with ${code}:\n${stdout}${stderr}`);
  const rss = Number((await readFile(rssFile, 'utf8')).trim().split('\n').at(-1)) * 1024;
  return { seconds, rss, stdout };
}

/** Several commands in turn, as one figure: the sum of their times, the largest of their peaks. */
async function timedSteps(steps: [string[], string, Record<string, string>?][]): Promise<Timed> {
  const total: Timed = { seconds: 0, rss: 0, stdout: '' };
  for (const [command, cwd, env] of steps) {
    const step = await timed(command, cwd, env);
    total.seconds += step.seconds;
    total.rss = Math.max(total.rss, step.rss);
  }
  return total;
}

const portico = (deployment: Deployment, args: string[]) =>
  timed([process.execPath, join(root, 'bin/portico.ts'), ...args], deployment.dataDir, envOf(deployment));

/** fsync of files the floor wrote, as `portico backup` and `restore` make theirs durable. */
const syncFiles = (files: string[]): [string[], string] => [['sync', ...files], workDir!];

async function filesUnder(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/** The floor of a backup: the database by its own tool, the blob folder by tar, both on disk. */
async function floorBackup(source: Deployment, into: string): Promise<Timed> {
  const blobs = join(into, 'blobs.tar');
  const database = join(into, POSTGRES_URL ? 'database.dump' : 'portico.sqlite');
  const dump: [string[], string] = POSTGRES_URL
    ? [['pg_dump', '-Fc', '-f', database, `--dbname=${source.databaseUrl}`], into]
    : [['sqlite3', sqliteFile(source), `.backup '${database}'`], into];
  return timedSteps([
    dump,
    [['tar', 'cf', blobs, '-C', source.dataDir, 'blobs'], into],
    syncFiles([database, blobs]),
  ]);
}

/** The floor of a restore: the database back by its own tool, the blob folder by tar x, on disk. */
async function floorRestore(from: string, target: Deployment): Promise<Timed> {
  const load: [string[], string] = POSTGRES_URL
    ? [['pg_restore', '--exit-on-error', `--dbname=${target.databaseUrl}`, join(from, 'database.dump')], from]
    : [['cp', join(from, 'portico.sqlite'), sqliteFile(target)], from];
  const loaded = await timedSteps([
    load,
    [['tar', 'xf', join(from, 'blobs.tar'), '-C', target.dataDir], from],
  ]);
  const written = [...(POSTGRES_URL ? [] : [sqliteFile(target)]), ...(await filesUnder(blobFolder(target)))];
  const synced = await timedSteps([syncFiles(written)]);
  return { seconds: loaded.seconds + synced.seconds, rss: Math.max(loaded.rss, synced.rss), stdout: '' };
}

/** "…: 100076 rows, 64 blob contents …" from a command's summary line. */
function counts(stdout: string) {
  const match = /(\d+) rows, (\d+) blob contents/.exec(stdout);
  if (!match) throw new Error(`no counts in: ${stdout}`);
  return { rows: Number(match[1]), blobs: Number(match[2]) };
}

// ---------------------------------------------------------------- figures

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const spread = (values: number[]) => `${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)}`;
const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

async function main() {
  const { bavail, bsize } = await statfs(BASE_DIR);
  const blobBytes = BLOBS * BLOB_MIB * MIB;
  if (bavail * bsize < 5 * blobBytes) throw new Error(`${BASE_DIR} needs ${(5 * blobBytes) / MIB} MiB free`);
  workDir = await mkdtemp(join(BASE_DIR, 'portico-bench-backup-'));
  const kind = POSTGRES_URL ? 'PostgreSQL' : 'SQLite';
  console.log(
    `Backup benchmark: Node ${process.version}, ${cpus().length} cores, ${kind}, ${DOCUMENTS} documents, ` +
      `${BLOBS} blobs of ${BLOB_MIB} MiB, ${ROUNDS} rounds (medians)\n`,
  );

  const source = await emptyDeployment('source');
  let began = performance.now();
  await populateDocuments(source);
  console.log(`populated ${DOCUMENTS} documents in ${((performance.now() - began) / 1000).toFixed(1)} s`);
  began = performance.now();
  await populateThroughGateway(source);
  console.log(
    `populated ${USERS + 1} users and ${BLOBS} blobs in ${((performance.now() - began) / 1000).toFixed(1)} s\n`,
  );

  const archive = join(workDir, 'backup.tar');
  const figures = {
    startup: [] as Timed[],
    floorBackup: [] as Timed[],
    backup: [] as Timed[],
    verify: [] as Timed[],
    floorRestore: [] as Timed[],
    restore: [] as Timed[],
  };
  let archiveBytes = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    // What every command pays before its work: loading Portico and opening the databases.
    figures.startup.push(await portico(source, ['migrate']));
    const floorDir = join(workDir, 'floor');
    await mkdir(floorDir);
    figures.floorBackup.push(await floorBackup(source, floorDir));
    const floorTarget = await emptyDeployment(`floor-target-${round}`);
    figures.floorRestore.push(await floorRestore(floorDir, floorTarget));
    await dropDeployment(floorTarget);
    await rm(floorDir, { recursive: true });

    const backup = await portico(source, ['backup', archive]);
    figures.backup.push(backup);
    archiveBytes = (await stat(archive)).size;
    const taken = counts(backup.stdout);
    if (taken.blobs !== BLOBS) throw new Error(`the backup took ${taken.blobs} blob contents, not ${BLOBS}`);
    const verify = await portico(source, ['verify', archive]);
    figures.verify.push(verify);
    if (!/is sound/.test(verify.stdout)) throw new Error(`verify: ${verify.stdout}`);
    const target = await emptyDeployment(`target-${round}`);
    const restore = await portico(target, ['restore', archive]);
    figures.restore.push(restore);
    const restored = counts(restore.stdout);
    if (restored.rows !== taken.rows || restored.blobs !== taken.blobs) {
      throw new Error(`restored ${JSON.stringify(restored)}, the backup took ${JSON.stringify(taken)}`);
    }
    await dropDeployment(target);
    await rm(archive);
    const line = (name: keyof typeof figures) =>
      `${name} ${figures[name].at(-1)!.seconds.toFixed(1)} s (${mib(figures[name].at(-1)!.rss)})`;
    console.log(`round ${round}: ${(Object.keys(figures) as (keyof typeof figures)[]).map(line).join(', ')}`);
  }

  const floorTool = POSTGRES_URL ? 'pg_dump -Fc' : 'sqlite3 .backup';
  const restoreTool = POSTGRES_URL ? 'pg_restore' : 'cp';
  const rows: [string, Timed[], Timed[] | null][] = [
    ['portico migrate (startup only)', figures.startup, null],
    [`floor: ${floorTool} + tar c`, figures.floorBackup, null],
    ['portico backup', figures.backup, figures.floorBackup],
    ['portico verify', figures.verify, null],
    [`floor: ${restoreTool} + tar x`, figures.floorRestore, null],
    ['portico restore', figures.restore, figures.floorRestore],
  ];
  console.log(
    `\narchive: ${mib(archiveBytes)}\n\n${'what'.padEnd(30)}  ${'s (median)'.padStart(10)}  ${'rounds'.padStart(11)}  ${'× floor'.padStart(7)}  ${'peak RSS'.padStart(10)}  ${'over startup'.padStart(12)}`,
  );
  let met = true;
  const startupRss = median(figures.startup.map((run) => run.rss));
  for (const [name, runs, floor] of rows) {
    const seconds = runs.map((run) => run.seconds);
    const ratio = floor ? median(seconds) / median(floor.map((run) => run.seconds)) : Number.NaN;
    const rss = Math.max(...runs.map((run) => run.rss));
    if (name.startsWith('portico') && runs !== figures.startup)
      met &&= rss < RSS_GOAL_MIB * MIB && (Number.isNaN(ratio) || ratio <= TIME_GOAL);
    console.log(
      `${name.padEnd(30)}  ${median(seconds).toFixed(1).padStart(10)}  ${spread(seconds).padStart(11)}  ${(Number.isNaN(ratio) ? '' : ratio.toFixed(2)).padStart(7)}  ${mib(rss).padStart(10)}  ${(name.startsWith('portico') && runs !== figures.startup ? mib(rss - startupRss) : '').padStart(12)}`,
    );
  }
  console.log(
    `\nGoals (backup and restore ≤ ${TIME_GOAL} × floor, peak RSS < ${RSS_GOAL_MIB} MiB): ${met ? 'met' : 'NOT met'}`,
  );
}

async function cleanUp() {
  if (gateway && gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  for (const name of [...scratchDatabases]) {
    await postgres((client) => client.query(`drop database if exists ${name} with (force)`)).catch(() => {});
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  console.error(`\nbench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
