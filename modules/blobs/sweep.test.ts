import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BlobStorage, parseBlobStorageUrl } from '../../src/index.ts';
import {
  backends,
  bootstrapAdmin,
  type StoreKind,
  s3Client,
  startGateway,
  startTestBucket,
  storeKinds,
  TEST_S3,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import type { S3Server } from '../../test/s3/server.ts';
import { createS3Storage } from './s3.ts';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const HOURS_AGO = new Date(Date.now() - 2 * 60 * 60 * 1000);

const upload = async (client: TestClient, body: string) => {
  const created = await client.request('/blobs', {
    method: 'POST',
    body,
    headers: { 'x-portico-csrf': '1', 'content-type': 'text/plain' },
  });
  expect(created.status).toBe(201);
  return (await created.json()) as { sha256: string; url: string };
};

const listed = async (storage: BlobStorage, olderThan: Date) => {
  const found = [];
  for await (const content of storage.contents(olderThan)) found.push(content);
  return found;
};

describe('the S3 driver', () => {
  let s3: S3Server;
  let storage: BlobStorage;
  beforeAll(async () => {
    const bucket = await startTestBucket();
    s3 = bucket.s3;
    const target = parseBlobStorageUrl(bucket.env.BLOB_STORAGE_URL!, undefined);
    if (target.kind !== 's3') throw new Error('expected an S3 location');
    storage = createS3Storage(target.location, {
      credentials: { accessKeyId: TEST_S3.accessKeyId, secretAccessKey: TEST_S3.secretAccessKey },
      log: pino({ level: 'silent' }),
    });
  });
  afterAll(() => s3?.close());

  it('lists the content objects written before a time, page after page, and nothing else', async () => {
    const client = s3Client(s3);
    // More than one page of the listing (1000 keys).
    const written = new Map<string, number>();
    for (let i = 0; i < 1003; i++) {
      const body = `object ${i}`;
      const address = sha256(Buffer.from(body));
      written.set(address, body.length);
      await client.send(
        new PutObjectCommand({
          Bucket: TEST_S3.bucket,
          Key: `${TEST_S3.prefix}/sha256/${address.slice(0, 2)}/${address}`,
          Body: body,
        }),
      );
    }
    // Beside them: a name that is no content address, one in the wrong shard, an upload in progress.
    const stray = sha256(Buffer.from('stray'));
    for (const key of [`sha256/${stray.slice(0, 2)}/notes.txt`, `sha256/zz/${stray}`, `tmp/${stray}`]) {
      await client.send(
        new PutObjectCommand({ Bucket: TEST_S3.bucket, Key: `${TEST_S3.prefix}/${key}`, Body: 'x' }),
      );
    }
    client.destroy();
    const pages = () =>
      s3.requests.filter((request) => request.method === 'GET' && /list-type=2/.test(request.query)).length;

    const before = pages();
    const all = await listed(storage, new Date(Date.now() + 2000));
    // The server reports each request as it answers it: the last may arrive a moment later.
    await expect.poll(() => pages() - before).toBe(2);
    expect(new Map(all.map((content) => [content.sha256, content.size]))).toEqual(written);
    expect(all).toHaveLength(written.size);
    // The test server keeps whole seconds, as S3 does: what was just written is not older than a minute ago.
    expect(await listed(storage, new Date(Date.now() - 60_000))).toEqual([]);
  }, 60_000);
});

/** Writes bytes at a content address of the folder driver as a crash after placing them would leave them. */
async function plantFile(dataDir: string, body: string, modified: Date) {
  const address = sha256(Buffer.from(body));
  const folder = join(dataDir, 'blobs', 'sha256', address.slice(0, 2));
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, address), body);
  await utimes(join(folder, address), modified, modified);
  return join(folder, address);
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

describe.each(backends)('the sweep of unreferenced bytes on %s', (backend) => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-sweep-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('removes, at start, files older than the grace period that no blob references, and only those', async () => {
    const dataDir = join(dir, 'file');
    let portico = await startGateway({ backend, dataDir });
    try {
      const admin = await bootstrapAdmin(portico);
      const kept = await upload(admin, 'a blob that stays');
      const keptPath = join(dataDir, 'blobs', 'sha256', kept.sha256.slice(0, 2), kept.sha256);
      await utimes(keptPath, HOURS_AGO, HOURS_AGO);
      const orphan = await plantFile(dataDir, 'placed, and then the gateway died', HOURS_AGO);
      const young = await plantFile(dataDir, 'maybe an upload about to commit', new Date());
      await portico.stop();

      portico = await startGateway({ backend, dataDir, databaseUrl: portico.databaseUrl });
      await expect.poll(() => portico.logs.find((line) => line.collected !== undefined)?.collected).toBe(1);
      expect(await exists(orphan)).toBe(false);
      expect(await exists(keptPath)).toBe(true);
      expect(await exists(young)).toBe(true);
      const signedIn = portico.client();
      for (const [name, value] of admin.cookies) signedIn.cookies.set(name, value);
      expect(await (await signedIn.request(kept.url)).text()).toBe('a blob that stays');
    } finally {
      await portico.close();
    }
  }, 60_000);

  it('removes unreferenced objects from a bucket, once they are older than blobs.sweepAfterSeconds', async () => {
    const bucket = await startTestBucket();
    const config = { blobs: { sweepAfterSeconds: 0 } };
    const dataDir = join(dir, 's3');
    await mkdir(dataDir);
    let portico = await startGateway({ backend, dataDir, config, env: bucket.env });
    const client = s3Client(bucket.s3);
    try {
      const admin = await bootstrapAdmin(portico);
      const kept = await upload(admin, 'a blob in the bucket');
      const orphan = sha256(Buffer.from('an object no row references'));
      const orphanKey = `${TEST_S3.prefix}/sha256/${orphan.slice(0, 2)}/${orphan}`;
      await client.send(
        new PutObjectCommand({ Bucket: TEST_S3.bucket, Key: orphanKey, Body: 'an object no row references' }),
      );
      await portico.stop();

      // S3 keeps whole seconds: the orphan is older than "now" only once a second has passed.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      portico = await startGateway({
        backend,
        dataDir,
        config,
        env: bucket.env,
        databaseUrl: portico.databaseUrl,
      });
      await expect.poll(() => portico.logs.find((line) => line.collected !== undefined)?.collected).toBe(1);
      const left = await client.send(
        new ListObjectsV2Command({ Bucket: TEST_S3.bucket, Prefix: `${TEST_S3.prefix}/sha256/` }),
      );
      expect(left.Contents?.map((object) => object.Key)).toEqual([
        `${TEST_S3.prefix}/sha256/${kept.sha256.slice(0, 2)}/${kept.sha256}`,
      ]);
      const signedIn = portico.client();
      for (const [name, value] of admin.cookies) signedIn.cookies.set(name, value);
      expect(await (await signedIn.request(kept.url)).text()).toBe('a blob in the bucket');
    } finally {
      client.destroy();
      await portico.close();
      await bucket.s3.close();
    }
  }, 60_000);
});

describe.each(storeKinds)('which content addresses no blob references, on %s', (kind: StoreKind) => {
  let portico: TestGateway;
  let admin: TestClient;
  beforeAll(async () => {
    portico = await startGateway({ backend: kind });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('answers for a whole batch in one call', async () => {
    const first = await upload(admin, 'referenced once');
    await upload(admin, 'referenced twice');
    const twice = await upload(admin, 'referenced twice');
    const never = Array.from({ length: 998 }, () => randomBytes(32).toString('hex'));
    const unreferenced = await portico.gateway.runtime.store.blobs.unreferenced([
      first.sha256,
      ...never,
      twice.sha256,
    ]);
    expect(unreferenced.sort()).toEqual([...never].sort());
    expect(await portico.gateway.runtime.store.blobs.unreferenced([])).toEqual([]);
  });
});
