/**
 * `npm run bench:blobs`: a 1 GiB blob up through `POST /blobs` and down through `GET /blobs/:id`,
 * each against a floor: a plain Node stream copy of the same file with fsync. Portico runs in a
 * child process (SQLite, production mode) whose RSS is sampled throughout; the goals are each way
 * ≥ 0.5 of the floor's throughput and < 64 MiB of RSS growth. See BENCHMARKS.md, "Blobs".
 *
 * Environment (all optional): BENCH_BLOB_MIB (size, default 1024), BENCH_BLOB_ROUNDS (default 3;
 * the figures are the medians), BENCH_BLOB_DIR (where the files go; default the system's temp
 * folder, which needs about 3 times the size free), BENCH_BLOB_DATABASE_URL (the store, an empty
 * database; default SQLite in the data folder), BENCH_BLOB_STORAGE (`file`, the default, or
 * `database`: BLOB_STORAGE_URL=database, the bytes in that store). Exits non-zero when a transfer
 * fails or its bytes differ; a missed goal is reported but does not fail the run.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { firstAdminCookie, startPortico } from './portico.ts';
import { downloadFile, MIB, makeSource, seconds, sha256File, uploadFile } from './transfers.ts';

const SIZE = positive('BENCH_BLOB_MIB', 1024) * MIB;
const ROUNDS = positive('BENCH_BLOB_ROUNDS', 3);
const BASE_DIR = process.env.BENCH_BLOB_DIR ?? tmpdir();
const DATABASE_URL = process.env.BENCH_BLOB_DATABASE_URL;
const STORAGE = process.env.BENCH_BLOB_STORAGE ?? 'file';
if (STORAGE !== 'file' && STORAGE !== 'database') throw new Error('BENCH_BLOB_STORAGE is file or database');
const THROUGHPUT_GOAL = 0.5;
const RSS_GOAL_MIB = 64;
const SAMPLE_EVERY_MS = 20;

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

let child: ChildProcess | undefined;
let workDir: string | undefined;

// ---------------------------------------------------------------- the gateway

async function graphql(url: string, query: string, variables: Record<string, unknown>, headers = {}) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown };
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return { response, data: body.data! };
}

/** An API key of the first admin that uploads and downloads blobs (and nothing else). */
async function apiKey(url: string, token: string): Promise<string> {
  const cookie = await firstAdminCookie(url, token);
  const { data } = await graphql(
    url,
    'mutation { createApiKey(name: "bench", scopes: ["blobs:read", "blobs:write"]) { secret } }',
    {},
    { cookie },
  );
  return (data.createApiKey as { secret: string }).secret;
}

// ---------------------------------------------------------------- RSS

/** Samples the child's resident set (and its high-water mark) while `work` runs. */
async function withRss<T>(pid: number, work: () => Promise<T>) {
  const read = async () => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
    return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 };
  };
  const before = await read();
  let peak = before.rss;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, (await read()).rss);
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
    }
  })();
  try {
    const result = await work();
    // A new high-water mark is the true peak; otherwise the samples are the best estimate.
    const after = await read();
    return { result, growth: Math.max(peak, after.hwm > before.hwm ? after.hwm : 0) - before.rss };
  } finally {
    sampling = false;
    await sampler;
  }
}

// ---------------------------------------------------------------- transfers

/** The floor: the same bytes copied file to file by Node streams, fsynced. */
async function floorCopy(source: string, target: string) {
  const start = process.hrtime.bigint();
  await pipeline(
    createReadStream(source, { highWaterMark: MIB }),
    createWriteStream(target, { flush: true }),
  );
  return seconds(start);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mibPerSecond = (elapsed: number) => SIZE / MIB / elapsed;

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const { bavail, bsize } = await statfs(BASE_DIR);
  if (bavail * bsize < 3.5 * SIZE) throw new Error(`${BASE_DIR} needs ${(3.5 * SIZE) / MIB} MiB free`);
  workDir = await mkdtemp(join(BASE_DIR, 'portico-bench-blobs-'));
  const source = join(workDir, 'source.bin');
  const copy = join(workDir, 'copy.bin');
  const downloaded = join(workDir, 'downloaded.bin');
  console.log(
    `Blob benchmark: Node ${process.version}, ${cpus().length} cores, ${SIZE / MIB} MiB, ${ROUNDS} rounds (medians), ` +
      `store ${DATABASE_URL ? new URL(DATABASE_URL).protocol.replace(':', '') : 'sqlite'}, bytes in ${STORAGE}\n`,
  );
  const expected = await makeSource(source, SIZE);
  const dataDir = join(workDir, 'portico');
  await mkdir(dataDir);
  const env = {
    ...(DATABASE_URL ? { DATABASE_URL } : {}),
    ...(STORAGE === 'database' ? { BLOB_STORAGE_URL: 'database' } : {}),
  };
  const { url, token } = await startPortico(dataDir, { blobs: { maxBytes: 2 * SIZE } }, env, (spawned) => {
    child = spawned;
  });
  const key = await apiKey(url, token);
  const pid = child!.pid!;

  const floors: number[] = [];
  const uploads: number[] = [];
  const downloads: number[] = [];
  const uploadRss: number[] = [];
  const downloadRss: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    floors.push(await floorCopy(source, copy));
    await rm(copy);
    const up = await withRss(pid, () => uploadFile(url, key, source, SIZE));
    if (up.result.blob.sha256 !== expected || up.result.blob.size !== SIZE) {
      throw new Error(`upload stored other bytes: ${JSON.stringify(up.result.blob)}`);
    }
    uploads.push(up.result.elapsed);
    uploadRss.push(up.growth);
    const down = await withRss(pid, () => downloadFile(url, key, up.result.blob.url, downloaded));
    downloads.push(down.result);
    downloadRss.push(down.growth);
    if ((await sha256File(downloaded)) !== expected) throw new Error('download returned other bytes');
    await rm(downloaded);
    // Deleted, so that every round's upload places its bytes anew.
    await graphql(
      url,
      'mutation ($id: ID!) { deleteBlob(id: $id) }',
      { id: up.result.blob.id },
      {
        authorization: `Bearer ${key}`,
      },
    );
    console.log(
      `round ${round}: floor ${mibPerSecond(floors.at(-1)!).toFixed(0)} MiB/s, ` +
        `upload ${mibPerSecond(up.result.elapsed).toFixed(0)} MiB/s (RSS +${(up.growth / MIB).toFixed(1)} MiB), ` +
        `download ${mibPerSecond(down.result).toFixed(0)} MiB/s (RSS +${(down.growth / MIB).toFixed(1)} MiB)`,
    );
  }

  const floor = mibPerSecond(median(floors));
  const rows = [
    ['floor: stream copy + fsync', floor, 1, Number.NaN],
    [
      'POST /blobs',
      mibPerSecond(median(uploads)),
      mibPerSecond(median(uploads)) / floor,
      Math.max(...uploadRss),
    ],
    [
      'GET /blobs/:id',
      mibPerSecond(median(downloads)),
      mibPerSecond(median(downloads)) / floor,
      Math.max(...downloadRss),
    ],
  ] as const;
  console.log(
    `\n${'what'.padEnd(28)}  ${'MiB/s'.padStart(7)}  ${'× floor'.padStart(8)}  ${'peak RSS growth'.padStart(16)}`,
  );
  for (const [name, speed, ratio, rss] of rows) {
    const grown = Number.isNaN(rss) ? '' : `${(rss / MIB).toFixed(1)} MiB`;
    console.log(
      `${name.padEnd(28)}  ${speed.toFixed(0).padStart(7)}  ${ratio.toFixed(2).padStart(8)}  ${grown.padStart(16)}`,
    );
  }
  const met = rows.slice(1).every(([, , ratio, rss]) => ratio >= THROUGHPUT_GOAL && rss < RSS_GOAL_MIB * MIB);
  console.log(
    `\nGoals (each way ≥ ${THROUGHPUT_GOAL} × floor, RSS growth < ${RSS_GOAL_MIB} MiB): ${met ? 'met' : 'NOT met'}`,
  );
  return 0;
}

function cleanUp() {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp();
    process.exit(130);
  });
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`\nbench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child?.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  cleanUp();
}
