/**
 * `npm run bench:blob-storage`: a 1 GiB blob up through `POST /blobs` and down through
 * `GET /blobs/:id`, on the folder driver and on S3 storage, several rounds each. Portico runs in
 * a child process (SQLite, production mode) whose RSS is sampled throughout. The S3 endpoint is
 * the strict test server of test/s3 (a child process on the same machine, its buckets in files):
 * the S3 figures are the driver's and the SDK's cost plus that server's, not a real bucket's.
 * See BENCHMARKS.md, "Blob storage: folder and S3".
 *
 * Environment (all optional): BENCH_BLOB_MIB (size, default 1024), BENCH_BLOB_ROUNDS (default 3),
 * BENCH_BLOB_DIR (where the files go; default the system's temp folder, which needs about 5 times
 * the size free). Exits non-zero when a transfer fails or its bytes differ.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BucketLocationConstraint, CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { type S3Server, startS3Server } from '../test/s3/server.ts';
import {
  blobsApiKey,
  cpuMs,
  firstAdminCookie,
  graphql,
  positive,
  runBenchmark,
  startPortico,
} from './portico.ts';
import { downloadFile, MIB, makeSource, sha256File, uploadFile } from './transfers.ts';

const SIZE = positive('BENCH_BLOB_MIB', 1024) * MIB;
const ROUNDS = positive('BENCH_BLOB_ROUNDS', 3);
const BASE_DIR = process.env.BENCH_BLOB_DIR ?? tmpdir();
const SAMPLE_EVERY_MS = 20;
const S3 = {
  accessKeyId: 'BENCHKEY',
  secretAccessKey: 'bench-secret-0123456789',
  region: 'eu-bench-1',
  bucket: 'portico-bench',
};

const children = new Set<ChildProcess>();
const servers = new Set<S3Server>();
let workDir: string | undefined;

/**
 * Peak resident set of `pid` while `work` runs (samples, and the kernel's high-water mark), and
 * the CPU time it used: on a shared machine, a figure that other load does not inflate.
 */
async function peakRss<T>(pid: number, work: () => Promise<T>) {
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
    const after = await read();
    return {
      result,
      peak: after.hwm > before.hwm ? after.hwm : peak,
      cpu: ((await cpuMs(pid)) - cpuBefore) / 1000,
    };
  } finally {
    sampling = false;
    await sampler;
  }
}

/** The environment that points a gateway at a fresh bucket of a test S3 server under `dir`. */
async function testBucket(dir: string): Promise<Record<string, string>> {
  const server = await startS3Server({ ...S3, root: dir });
  servers.add(server);
  const client = new S3Client({
    endpoint: server.endpoint,
    region: S3.region,
    forcePathStyle: true,
    credentials: S3,
  });
  await client.send(
    new CreateBucketCommand({
      Bucket: S3.bucket,
      CreateBucketConfiguration: { LocationConstraint: S3.region as BucketLocationConstraint },
    }),
  );
  client.destroy();
  return {
    BLOB_STORAGE_URL: `s3://${S3.bucket}/blobs?endpoint=${encodeURIComponent(server.endpoint)}&region=${S3.region}&forcePathStyle=true`,
    AWS_ACCESS_KEY_ID: S3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3.secretAccessKey,
  };
}

interface Round {
  upload: number;
  uploadRss: number;
  uploadCpu: number;
  download: number;
  downloadRss: number;
  downloadCpu: number;
}

async function rounds(storage: 'folder' | 'S3', source: string, expected: string): Promise<Round[]> {
  const dir = join(workDir!, storage);
  await mkdir(join(dir, 'portico'), { recursive: true });
  const env = storage === 'S3' ? await testBucket(join(dir, 's3')) : {};
  const { url, token, child } = await startPortico(
    join(dir, 'portico'),
    { blobs: { maxBytes: 2 * SIZE } },
    env,
    (spawned) => children.add(spawned),
  );
  const cookie = await firstAdminCookie(url, token);
  const key = await blobsApiKey(url, cookie);
  const downloaded = join(dir, 'downloaded.bin');
  const atRest = (await readFile(`/proc/${child.pid}/status`, 'utf8')).match(/^VmRSS:\s+(\d+) kB/m)?.[1];
  console.log(`${storage}: gateway RSS at rest ${mib(Number(atRest) * 1024)}`);
  const results: Round[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const up = await peakRss(child.pid!, () => uploadFile(url, key, source, SIZE));
    if (up.result.blob.sha256 !== expected || up.result.blob.size !== SIZE) {
      throw new Error(`upload stored other bytes: ${JSON.stringify(up.result.blob)}`);
    }
    const down = await peakRss(child.pid!, () => downloadFile(url, key, up.result.blob.url, downloaded));
    if ((await sha256File(downloaded)) !== expected) throw new Error('download returned other bytes');
    await rm(downloaded);
    // Deleted, so that every round's upload places its bytes anew.
    const deleted = await graphql(
      url,
      'mutation ($id: ID!) { deleteBlob(id: $id) }',
      { id: up.result.blob.id },
      cookie,
    );
    if (deleted.body.data?.deleteBlob !== true) throw new Error(`delete: ${JSON.stringify(deleted.body)}`);
    const result = {
      upload: up.result.elapsed,
      uploadRss: up.peak,
      uploadCpu: up.cpu,
      download: down.result,
      downloadRss: down.peak,
      downloadCpu: down.cpu,
    };
    results.push(result);
    console.log(
      `${storage} round ${round}: upload ${mibPerSecond(result.upload).toFixed(0)} MiB/s ` +
        `(gateway CPU ${result.uploadCpu.toFixed(1)} s, peak RSS ${mib(result.uploadRss)}), ` +
        `download ${mibPerSecond(result.download).toFixed(0)} MiB/s ` +
        `(gateway CPU ${result.downloadCpu.toFixed(1)} s, peak RSS ${mib(result.downloadRss)})`,
    );
  }
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  children.delete(child);
  return results;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mibPerSecond = (elapsed: number) => SIZE / MIB / elapsed;
const mib = (bytes: number) => `${(bytes / MIB).toFixed(0)} MiB`;
/** Median MiB/s and the spread (slowest–fastest round) of some transfer times. */
const speed = (times: number[]) =>
  `${mibPerSecond(median(times)).toFixed(0)} (${mibPerSecond(Math.max(...times)).toFixed(0)}–${mibPerSecond(Math.min(...times)).toFixed(0)})`;

async function main() {
  const { bavail, bsize } = await statfs(BASE_DIR);
  if (bavail * bsize < 5 * SIZE) throw new Error(`${BASE_DIR} needs ${(5 * SIZE) / MIB} MiB free`);
  workDir = await mkdtemp(join(BASE_DIR, 'portico-bench-blob-storage-'));
  console.log(
    `Blob storage benchmark: Node ${process.version}, ${cpus().length} cores, ${SIZE / MIB} MiB, ${ROUNDS} rounds each\n`,
  );
  const source = join(workDir, 'source.bin');
  const expected = await makeSource(source, SIZE);
  const figures = [];
  for (const storage of ['folder', 'S3'] as const)
    figures.push([storage, await rounds(storage, source, expected)] as const);

  console.log(
    '\nMedian (slowest–fastest) MiB/s; median gateway CPU seconds; highest peak RSS of the gateway',
  );
  for (const [storage, results] of figures) {
    const cpu = (values: number[]) => `${median(values).toFixed(1)} s CPU`;
    const peak = (values: number[]) => `peak RSS ${mib(Math.max(...values))}`;
    console.log(
      `${storage.padEnd(7)} upload ${speed(results.map((r) => r.upload))}, ${cpu(results.map((r) => r.uploadCpu))}, ` +
        `${peak(results.map((r) => r.uploadRss))}; download ${speed(results.map((r) => r.download))}, ` +
        `${cpu(results.map((r) => r.downloadCpu))}, ${peak(results.map((r) => r.downloadRss))}`,
    );
  }
}

function cleanUp() {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const server of servers) void server.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

runBenchmark(main, cleanUp);
