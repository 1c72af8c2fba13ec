import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobsDocument, RedeemTokenDocument } from '../../client/index.ts';
import {
  ADMIN,
  type BlobStorageKind,
  backends,
  createTestDatabase,
  s3Client,
  startTestBucket,
  TEST_S3,
  TestClient,
  type TestDatabase,
} from '../../test/harness.ts';
import { type PorticoServer, startPortico } from '../../test/run-cli.ts';
import type { S3Server } from '../../test/s3/server.ts';

const ROUNDS = 3;
const storages: BlobStorageKind[] = ['file', 's3'];
const cases = backends.flatMap((backend) => storages.map((storage) => [backend, storage] as const));
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe.each(cases)('an upload cut by kill -9, on %s with %s storage', (backend, storage) => {
  let dir: string;
  let database: TestDatabase;
  let s3: S3Server | undefined;
  let bucket: S3Client | undefined;
  let env: Record<string, string> = {};
  const started: PorticoServer[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-crash-'));
    database = await createTestDatabase(backend, dir);
    if (storage === 's3') {
      const started = await startTestBucket();
      s3 = started.s3;
      bucket = s3Client(s3);
      env = started.env;
      // A bucket cannot tell a dead gateway's upload from a live one's: only its age lets the sweep
      // take it, and here a restart takes everything older than now.
      await writeFile(join(dir, 'portico.config.json'), JSON.stringify({ blobs: { sweepAfterSeconds: 0 } }));
    }
  });
  afterAll(async () => {
    await Promise.all(started.map((server) => server.stop()));
    await database?.drop();
    bucket?.destroy();
    await s3?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** `portico start` in a child process on a shared data folder, database and bucket. */
  async function start(): Promise<PorticoServer> {
    const server = await startPortico(dir, { PORTICO_DATA_DIR: dir, DATABASE_URL: database.url, ...env });
    started.push(server);
    return server;
  }

  const listKeys = async (under: string) => {
    const listed = await bucket!.send(
      new ListObjectsV2Command({ Bucket: TEST_S3.bucket, Prefix: `${TEST_S3.prefix}/${under}` }),
    );
    return (listed.Contents ?? []).map((object) => object.Key!.split('/').pop()!);
  };
  /** Temporary objects of uploads, and (in a bucket) multipart uploads still open. */
  const leftUploads = async () => {
    if (!bucket) return readdir(join(dir, 'blobs', 'tmp'));
    const open = await bucket.send(
      new ListMultipartUploadsCommand({ Bucket: TEST_S3.bucket, Prefix: `${TEST_S3.prefix}/tmp/` }),
    );
    return [...(await listKeys('tmp/')), ...(open.Uploads ?? []).map((upload) => upload.UploadId!)];
  };
  /** Whether an upload under way has reached the storage (a bucket sees nothing before the first 8 MiB part). */
  const uploadUnderWay = async () => {
    if (bucket) return (await leftUploads()).length === 1;
    const names = await leftUploads();
    return names.length === 1 && (await stat(join(dir, 'blobs', 'tmp', names[0]!))).size > 0;
  };
  const storedObjects = async () => {
    if (bucket) return listKeys('sha256/');
    const root = join(dir, 'blobs', 'sha256');
    const shards = await readdir(root);
    return (await Promise.all(shards.map((shard) => readdir(join(root, shard))))).flat();
  };
  /**
   * Bytes at their content address with no row, as a kill after they were placed and before the
   * row was committed leaves them (that window is too short to hit with a signal reliably), older
   * than the grace period.
   */
  const leaveUnreferencedBytes = async (text: string) => {
    const address = sha256(text);
    if (bucket) {
      const Key = `${TEST_S3.prefix}/sha256/${address.slice(0, 2)}/${address}`;
      await bucket.send(new PutObjectCommand({ Bucket: TEST_S3.bucket, Key, Body: text }));
      return;
    }
    const folder = join(dir, 'blobs', 'sha256', address.slice(0, 2));
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, address), text);
    const hoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(folder, address), hoursAgo, hoursAgo);
  };

  it('leaves no row without bytes, and the restart sweeps what the cut upload left and unreferenced bytes', async () => {
    let server = await start();
    const admin = new TestClient(server.url);
    const bootstrap = server.logs.find((line) => line.bootstrap === true);
    const token = String(bootstrap?.msg).match(/token=([\w-]+)/)?.[1];
    const redeemed = await admin.gql(RedeemTokenDocument, { token: token!, profile: ADMIN });
    expect(redeemed.errors).toBeUndefined();
    const as = (url: string) => {
      const client = new TestClient(url);
      for (const [name, value] of admin.cookies) client.cookies.set(name, value);
      return client;
    };

    // A blob stored before the crashes: its row and bytes survive every sweep.
    const kept = await as(server.url).request('/blobs', {
      method: 'POST',
      body: 'stored before the crashes',
      headers: { 'x-portico-csrf': '1' },
    });
    expect(kept.status).toBe(201);
    const { sha256: keptAddress } = (await kept.json()) as { sha256: string };

    for (let round = 0; round < ROUNDS; round++) {
      await leaveUnreferencedBytes(`placed by a gateway killed before its row, round ${round}`);
      // A chunked upload that keeps going: 4 MiB now (20 MiB for a bucket, past the first
      // multipart part), the rest never comes.
      const upload = httpRequest(new URL('/blobs', server.url), {
        method: 'POST',
        headers: { cookie: as(server.url).cookieHeader, 'x-portico-csrf': '1' },
        agent: false,
      });
      upload.on('error', () => {});
      for (let i = 0; i < (bucket ? 320 : 64); i++) upload.write(Buffer.alloc(64 * 1024, i));
      await expect.poll(uploadUnderWay, { timeout: 10_000 }).toBe(true);

      server.process.kill('SIGKILL');
      await once(server.process, 'exit');
      expect(await leftUploads(), `round ${round}: the killed upload's leftovers`).toHaveLength(1);
      upload.destroy();

      server = await start();
      expect(await leftUploads(), `round ${round}`).toEqual([]);
      expect(server.logs.some((line) => line.swept === 1)).toBe(true);
      // The sweep of unreferenced bytes runs in the background after the start.
      await expect.poll(() => server.logs.some((line) => line.collected === 1)).toBe(true);
      expect(await storedObjects()).toEqual([keptAddress]);
      // No row without bytes: the one row is the blob stored before, and its bytes are served.
      const listed = await as(server.url).gql(BlobsDocument);
      expect(listed.errors).toBeUndefined();
      const rows = listed.data?.blobs.edges.map((edge) => edge.node) ?? [];
      expect(
        rows.map((row) => row.sha256),
        `round ${round}`,
      ).toEqual([keptAddress]);
      for (const row of rows) {
        const download = await as(server.url).request(row.url);
        expect(await download.text()).toBe('stored before the crashes');
      }
    }

    // The store still works after all that.
    const done = await as(server.url).request('/blobs', {
      method: 'POST',
      body: 'after the crashes',
      headers: { 'x-portico-csrf': '1' },
    });
    expect(done.status).toBe(201);
    expect(await storedObjects()).toHaveLength(2);
    await server.stop();
  }, 120_000);
});
