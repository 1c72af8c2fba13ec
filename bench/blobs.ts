/**
 * `npm run bench:blobs`: a 1 GiB blob up through `POST /blobs` and down through `GET /blobs/:id`,
 * each against a floor: a plain Node stream copy of the same file with fsync, measured cold (the
 * run's first copy) and warm (each round's copy, after at least one before it). Portico runs in a
 * child process (SQLite, production mode) whose RSS is sampled, and CPU time read, throughout; the
 * goals are each way ≥ 0.5 of the floor's throughput and < 64 MiB of RSS growth, the server's first
 * upload included.
 * See BENCHMARKS.md, "Blobs".
 *
 * Environment (all optional): BENCH_BLOB_MIB (size, default 1024), BENCH_BLOB_ROUNDS (default 3;
 * the figures are the medians), BENCH_BLOB_DIR (where the files go; default the system's temp
 * folder, which needs about 3 times the size free), BENCH_BLOB_DATABASE_URL (the store, an empty
 * database; default SQLite in the data folder), BENCH_BLOB_STORAGE (`file`, the default, or
 * `database`: BLOB_STORAGE_URL=database, the bytes in that store), BENCH_PROFILE (a folder: Portico
 * runs with --cpu-prof and writes its profile there when it stops). Exits non-zero when a transfer
 * fails or its bytes differ; a missed goal is reported but does not fail the run.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { cpuMs, firstAdminCookie, startPortico } from './portico.ts';
import { downloadFile, MIB, makeSource, seconds, sha256File, uploadFile } from './transfers.ts';

const SIZE = positive('BENCH_BLOB_MIB', 1024) * MIB;
const ROUNDS = positive('BENCH_BLOB_ROUNDS', 3);
const BASE_DIR = process.env.BENCH_BLOB_DIR ?? tmpdir();
const DATABASE_URL = process.env.BENCH_BLOB_DATABASE_URL;
const STORAGE = process.env.BENCH_BLOB_STORAGE ?? 'file';
const PROFILE_DIR = process.env.BENCH_PROFILE ? resolve(process.env.BENCH_PROFILE) : undefined;
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

// ---------------------------------------------------------------- RSS and CPU

/**
 * Samples the child's resident set (and its high-water mark) while `work` runs, and reads the CPU
 * time it used meanwhile: a figure that the disk's moods and other load on the machine inflate less.
 */
async function withRss<T>(pid: number, work: () => Promise<T>) {
  const read = async () => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
    return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 };
  };
  const before = await read();
  const cpuBefore = await cpuMs(pid);
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
    return {
      result,
      growth: Math.max(peak, after.hwm > before.hwm ? after.hwm : 0) - before.rss,
      cpu: ((await cpuMs(pid)) - cpuBefore) / 1000,
    };
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
const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;
/** Throughputs of the rounds: the median, and the range when there are several. */
function speeds(elapsed: number[]) {
  const values = elapsed.map(mibPerSecond);
  const range =
    values.length > 1 ? ` (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})` : '';
  return { median: median(values), text: `${median(values).toFixed(0)}${range}` };
}

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
  // The run's first copy: nothing of it has run before (code, buffers, the file system's state).
  const coldFloor = await floorCopy(source, copy);
  await rm(copy);
  console.log(`cold floor (the run's first copy): ${mibPerSecond(coldFloor).toFixed(0)} MiB/s`);
  const dataDir = join(workDir, 'portico');
  await mkdir(dataDir);
  if (PROFILE_DIR) await mkdir(PROFILE_DIR, { recursive: true });
  const env = {
    ...(DATABASE_URL ? { DATABASE_URL } : {}),
    ...(STORAGE === 'database' ? { BLOB_STORAGE_URL: 'database' } : {}),
    ...(PROFILE_DIR ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${PROFILE_DIR}` } : {}),
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
  const uploadCpu: number[] = [];
  const downloadCpu: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    floors.push(await floorCopy(source, copy));
    await rm(copy);
    const up = await withRss(pid, () => uploadFile(url, key, source, SIZE));
    if (up.result.blob.sha256 !== expected || up.result.blob.size !== SIZE) {
      throw new Error(`upload stored other bytes: ${JSON.stringify(up.result.blob)}`);
    }
    uploads.push(up.result.elapsed);
    uploadRss.push(up.growth);
    uploadCpu.push(up.cpu);
    const down = await withRss(pid, () => downloadFile(url, key, up.result.blob.url, downloaded));
    downloads.push(down.result);
    downloadRss.push(down.growth);
    downloadCpu.push(down.cpu);
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
        `upload ${mibPerSecond(up.result.elapsed).toFixed(0)} MiB/s (RSS +${mib(up.growth)}, ${up.cpu.toFixed(2)} s CPU), ` +
        `download ${mibPerSecond(down.result).toFixed(0)} MiB/s (RSS +${mib(down.growth)}, ${down.cpu.toFixed(2)} s CPU)`,
    );
  }

  const cold = mibPerSecond(coldFloor);
  const warm = speeds(floors);
  const up = speeds(uploads);
  const down = speeds(downloads);
  // Round 1's upload is the server's first: what it grows by is the cold figure.
  const laterUploads = uploadRss.slice(1);
  const rows = [
    ['floor, cold (first copy)', cold.toFixed(0), '1.00', '', '', ''],
    ['floor, warm (rounds)', warm.text, (warm.median / cold).toFixed(2), '1.00', '', ''],
    [
      'POST /blobs',
      up.text,
      (up.median / cold).toFixed(2),
      (up.median / warm.median).toFixed(2),
      `${median(uploadCpu).toFixed(2)} s`,
      `${mib(uploadRss[0]!)} first${laterUploads.length ? `, ≤ ${mib(Math.max(...laterUploads))} later` : ''}`,
    ],
    [
      'GET /blobs/:id',
      down.text,
      (down.median / cold).toFixed(2),
      (down.median / warm.median).toFixed(2),
      `${median(downloadCpu).toFixed(2)} s`,
      `≤ ${mib(Math.max(...downloadRss))}`,
    ],
  ];
  const widths = [26, 17, 7, 7, 10, 0];
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(`\n${line(['what', 'MiB/s', '× cold', '× warm', 'server CPU', 'peak RSS growth'])}`);
  for (const row of rows) console.log(line(row));

  const goals = [
    ['download ≥ 0.5 × warm floor', down.median / warm.median >= THROUGHPUT_GOAL],
    ['download ≥ 0.5 × cold floor', down.median / cold >= THROUGHPUT_GOAL],
    ['upload ≥ 0.5 × warm floor', up.median / warm.median >= THROUGHPUT_GOAL],
    ['upload ≥ 0.5 × cold floor', up.median / cold >= THROUGHPUT_GOAL],
    [`cold first upload RSS growth < ${RSS_GOAL_MIB} MiB`, uploadRss[0]! < RSS_GOAL_MIB * MIB],
    [
      `every transfer's RSS growth < ${RSS_GOAL_MIB} MiB`,
      Math.max(...uploadRss, ...downloadRss) < RSS_GOAL_MIB * MIB,
    ],
  ] as const;
  console.log('\nGoals:');
  for (const [goal, met] of goals) console.log(`  ${met ? 'met    ' : 'NOT met'}  ${goal}`);
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
if (PROFILE_DIR) console.log(`Portico's CPU profile is in ${PROFILE_DIR}`);
