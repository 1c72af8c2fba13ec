import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobsDocument, DeleteBlobDocument, LogInDocument } from '../../client/index.ts';
import { selectRows } from '../../src/index.ts';
import { CHUNK_BYTES } from '../../src/store/sql/blob-chunks.ts';
import {
  ADMIN,
  asServerAdmin,
  backends,
  bootstrapAdmin,
  createTestDatabase,
  postBlob,
  startGateway,
  type TestClient,
  type TestDatabase,
  type TestGateway,
} from '../../test/harness.ts';

const CONFIG = { blobs: { maxBytes: 32 * 1024 * 1024 } };
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

// The store has a database of its own, so that it can go away while sign-ins (the system
// database) still work and the blob storage is what answers.
describe.runIf(backends.includes('postgres'))(
  'two instances, separate data folders, blob bytes in one PostgreSQL store database',
  () => {
    let dir: string;
    let system: TestDatabase;
    let store: TestDatabase;
    let first: TestGateway;
    let second: TestGateway;
    let onFirst: TestClient;
    let onSecond: TestClient;

    /** The chunk rows in the store database, by address. */
    const chunks = async () => {
      const rows = await selectRows<{ address: string; chunks: number | string }>(
        first.gateway.runtime.db.store!.em.fork(),
        'select address, count(*) as chunks from blob_chunks group by address',
      );
      return Object.fromEntries(rows.map((row) => [row.address, Number(row.chunks)]));
    };

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'portico-db-blobs-'));
      system = await createTestDatabase('postgres', dir, 'system');
      store = await createTestDatabase('postgres', dir, 'store');
      const start = (dataDir: string) =>
        startGateway({
          backend: 'postgres',
          blobStorage: 'database',
          config: CONFIG,
          databaseUrl: store.url,
          env: { SYSTEM_DATABASE_URL: system.url },
          dataDir,
        });
      first = await start(await mkdtemp(join(dir, 'first-')));
      second = await start(await mkdtemp(join(dir, 'second-')));
      onFirst = await bootstrapAdmin(first);
      onSecond = second.client();
      expect(
        (await onSecond.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
      ).toBeUndefined();
    });
    afterAll(async () => {
      await second?.stop();
      await first?.stop();
      await asServerAdmin(
        `alter database ${new URL(store.url).pathname.slice(1)} allow_connections true`,
      ).catch(() => {});
      await store?.drop();
      await system?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    it("serve each other's blobs, ranges across chunks included, and a delete on one is seen by the other", async () => {
      const bytes = randomBytes(3 * CHUNK_BYTES + 5);
      const created = await postBlob(onFirst, bytes);
      expect(created.status, await created.clone().text()).toBe(201);
      const blob = (await created.json()) as { id: string; url: string; sha256: string };
      expect(blob.sha256).toBe(sha256(bytes));
      expect(await chunks()).toEqual({ [blob.sha256]: 4 });

      const whole = await onSecond.request(blob.url);
      expect(whole.status).toBe(200);
      expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);
      for (const [start, end] of [
        [CHUNK_BYTES - 10, 2 * CHUNK_BYTES + 10],
        [CHUNK_BYTES, CHUNK_BYTES],
        [2 * CHUNK_BYTES - 1, 2 * CHUNK_BYTES - 1],
        [3 * CHUNK_BYTES, 3 * CHUNK_BYTES + 4],
        [3 * CHUNK_BYTES + 4, 3 * CHUNK_BYTES + 4],
      ] as const) {
        const part = await onSecond.request(blob.url, { headers: { range: `bytes=${start}-${end}` } });
        expect(part.status).toBe(206);
        expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(start, end + 1))).toBe(true);
      }

      // Exactly two chunks: the last byte is the last of a full chunk.
      const even = randomBytes(2 * CHUNK_BYTES);
      const evenBlob = (await (await postBlob(onSecond, even)).json()) as { url: string; sha256: string };
      const tail = await onFirst.request(evenBlob.url, { headers: { range: 'bytes=-3' } });
      expect(Buffer.from(await tail.arrayBuffer()).equals(even.subarray(-3))).toBe(true);
      expect(sha256(new Uint8Array(await (await onFirst.request(evenBlob.url)).arrayBuffer()))).toBe(
        evenBlob.sha256,
      );

      expect((await onSecond.gql(DeleteBlobDocument, { id: blob.id })).data?.deleteBlob).toBe(true);
      expect((await onFirst.request(blob.url)).status).toBe(404);
      expect(Object.keys(await chunks())).toEqual([evenBlob.sha256]);
    }, 30_000);

    it('answers 503 while the store database is away, stores nothing, and serves again once it is back', async () => {
      const kept = await postBlob(onFirst, randomBytes(1000));
      expect(kept.status).toBe(201);
      const { url } = (await kept.json()) as { url: string };
      const before = await chunks();
      const rows = async () => (await onFirst.gql(BlobsDocument, { first: 100 })).data?.blobs.edges.length;
      const listed = await rows();

      const name = new URL(store.url).pathname.slice(1);
      await asServerAdmin(
        `alter database ${name} allow_connections false`,
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and pid <> pg_backend_pid()`,
      );
      const refused = await postBlob(onFirst, randomBytes(1000));
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      const unreadable = await onSecond.request(url);
      expect(unreadable.status).toBe(503);

      await asServerAdmin(`alter database ${name} allow_connections true`);
      await expect.poll(async () => (await onSecond.request(url)).status, { timeout: 15_000 }).toBe(200);
      expect(await rows()).toBe(listed);
      expect(await chunks()).toEqual(before);
      const again = await postBlob(onSecond, randomBytes(1000));
      expect(again.status).toBe(201);
      // Nothing logged as an error but the outage itself (src/outages.ts): no request failed as a bug.
      for (const gateway of [first, second]) {
        const errors = gateway.logs.filter(
          (line) => line.level >= 50 && !/^database store unavailable/.test(line.msg),
        );
        expect(errors).toEqual([]);
      }
    }, 30_000);
  },
);

describe.each(backends)('blob bytes in the store database on %s', (backend) => {
  it('survive a restart, which sweeps the uploads older than an hour and keeps younger ones', async () => {
    const portico = await startGateway({ backend, blobStorage: 'database', config: CONFIG });
    const bytes = randomBytes(CHUNK_BYTES + 1);
    const admin = await bootstrapAdmin(portico);
    const created = (await (await postBlob(admin, bytes)).json()) as { url: string };
    // What a crash leaves: an upload's chunks under a temporary address.
    const leftover = (address: string, stagedAt: number) =>
      selectRows(
        portico.gateway.runtime.db.store!.em.fork(),
        'insert into blob_chunks (address, position, staged_at, bytes) values (?, 0, ?, ?)',
        [address, stagedAt, Buffer.from('partial')],
      );
    await leftover(`tmp/${'a'.repeat(24)}`, Date.now() - 2 * 60 * 60 * 1000);
    await leftover(`tmp/${'b'.repeat(24)}`, Date.now());
    await portico.stop();
    const again = await startGateway({
      backend,
      blobStorage: 'database',
      config: CONFIG,
      databaseUrl: portico.databaseUrl,
      dataDir: portico.dataDir,
    });
    try {
      expect(again.logs.some((line) => line.swept === 1)).toBe(true);
      const temporary = await selectRows<{ address: string }>(
        again.gateway.runtime.db.store!.em.fork(),
        "select distinct address from blob_chunks where address like 'tmp/%'",
      );
      expect(temporary).toEqual([{ address: `tmp/${'b'.repeat(24)}` }]);
      const client = again.client();
      expect(
        (await client.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
      ).toBeUndefined();
      const got = await client.request(created.url);
      expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
    } finally {
      await again.stop();
      await portico.close();
    }
  }, 30_000);
});
