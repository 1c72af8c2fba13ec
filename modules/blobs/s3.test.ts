import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobsDocument, DeleteBlobDocument, LogInDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  postBlob,
  startGateway,
  startTestBucket,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import type { S3Server } from '../../test/s3/server.ts';

const CONFIG = { blobs: { maxBytes: 32 * 1024 * 1024 } };
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe.runIf(backends.includes('postgres'))('two instances, separate disks, one bucket', () => {
  let s3: S3Server;
  let first: TestGateway;
  let second: TestGateway;
  let secondDir: string;
  let onFirst: TestClient;
  let onSecond: TestClient;

  beforeAll(async () => {
    const bucket = await startTestBucket();
    s3 = bucket.s3;
    first = await startGateway({ backend: 'postgres', config: CONFIG, env: bucket.env });
    secondDir = await mkdtemp(join(tmpdir(), 'portico-second-'));
    second = await startGateway({
      backend: 'postgres',
      config: CONFIG,
      env: bucket.env,
      databaseUrl: first.databaseUrl,
      dataDir: secondDir,
    });
    onFirst = await bootstrapAdmin(first);
    onSecond = second.client();
    expect(
      (await onSecond.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
  });
  afterAll(async () => {
    await second?.stop();
    await first?.close();
    await s3?.close();
    await rm(secondDir, { recursive: true, force: true });
  });

  it("serve each other's blobs, ranges included, and a delete on one is seen by the other", async () => {
    // Past one multipart part (8 MiB), so the upload is multipart.
    const bytes = randomBytes(12 * 1024 * 1024 + 5);
    const created = await postBlob(onFirst, bytes);
    expect(created.status, await created.clone().text()).toBe(201);
    const blob = (await created.json()) as { id: string; url: string; sha256: string };
    expect(blob.sha256).toBe(sha256(bytes));

    const whole = await onSecond.request(blob.url);
    expect(whole.status).toBe(200);
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(blob.sha256);
    const part = await onSecond.request(blob.url, { headers: { range: 'bytes=8388600-8388615' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(8388600, 8388616));

    expect((await onSecond.gql(DeleteBlobDocument, { id: blob.id })).data?.deleteBlob).toBe(true);
    expect((await onFirst.request(blob.url)).status).toBe(404);
  }, 30_000);

  it('answers 503 while the bucket is away, stores nothing, and serves again once it is back', async () => {
    const kept = await postBlob(onFirst, randomBytes(1000));
    expect(kept.status).toBe(201);
    const { url } = (await kept.json()) as { url: string };

    const rows = async () => (await onFirst.gql(BlobsDocument, { first: 100 })).data?.blobs.edges.length;
    const before = await rows();
    await s3.stop();
    const refused = await postBlob(onFirst, randomBytes(1000));
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    const unreadable = await onSecond.request(url);
    expect(unreadable.status).toBe(503);

    await s3.start();
    expect(await rows()).toBe(before);
    const again = await postBlob(onSecond, randomBytes(1000));
    expect(again.status).toBe(201);
    expect((await onFirst.request(url)).status).toBe(200);
  }, 30_000);
});

describe('a bucket that refuses the key', () => {
  it('still lets the gateway start, answers 503 and logs why', async () => {
    const portico = await startGateway({
      blobStorage: 's3',
      env: { AWS_SECRET_ACCESS_KEY: 'not-the-secret' },
    });
    try {
      const admin = await bootstrapAdmin(portico);
      const refused = await postBlob(admin, randomBytes(100));
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      expect(portico.logs.some((line) => line.level >= 50 && /refuses the credentials/.test(line.msg))).toBe(
        true,
      );
    } finally {
      await portico.close();
    }
  }, 30_000);
});
