import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobsDocument, RedeemTokenDocument } from '../../client/index.ts';
import { ADMIN, backends, createTestDatabase, TestClient, type TestDatabase } from '../../test/harness.ts';
import { type PorticoServer, startPortico } from '../../test/run-cli.ts';

const ROUNDS = 3;

describe.each(backends)('an upload cut by kill -9, on %s', (backend) => {
  let dir: string;
  let database: TestDatabase;
  const started: PorticoServer[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-crash-'));
    database = await createTestDatabase(backend, dir);
  });
  afterAll(async () => {
    await Promise.all(started.map((server) => server.stop()));
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** `portico start` in a child process on a shared data folder and database. */
  async function start(): Promise<PorticoServer> {
    const server = await startPortico(dir, { PORTICO_DATA_DIR: dir, DATABASE_URL: database.url });
    started.push(server);
    return server;
  }

  const tempFiles = () => readdir(join(dir, 'blobs', 'tmp'));
  const storedObjects = async () => {
    const root = join(dir, 'blobs', 'sha256');
    const shards = await readdir(root);
    return (await Promise.all(shards.map((shard) => readdir(join(root, shard))))).flat();
  };

  it('leaves no blob visible after a restart, and the restart sweeps the temporary file', async () => {
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

    for (let round = 0; round < ROUNDS; round++) {
      // A chunked upload that keeps going: 4 MiB now, the rest never comes.
      const upload = httpRequest(new URL('/blobs', server.url), {
        method: 'POST',
        headers: { cookie: as(server.url).cookieHeader, 'x-portico-csrf': '1' },
        agent: false,
      });
      upload.on('error', () => {});
      for (let i = 0; i < 64; i++) upload.write(Buffer.alloc(64 * 1024, i));
      await expect
        .poll(
          async () => {
            const names = await tempFiles();
            return names.length === 1 ? (await stat(join(dir, 'blobs', 'tmp', names[0]!))).size : 0;
          },
          { timeout: 10_000 },
        )
        .toBeGreaterThan(0);

      server.process.kill('SIGKILL');
      await once(server.process, 'exit');
      expect(await tempFiles(), `round ${round}: the killed upload's file`).toHaveLength(1);
      upload.destroy();

      server = await start();
      expect(await tempFiles(), `round ${round}`).toEqual([]);
      expect(server.logs.some((line) => line.swept === 1)).toBe(true);
      expect(await storedObjects()).toEqual([]);
      const listed = await as(server.url).gql(BlobsDocument);
      expect(listed.errors).toBeUndefined();
      expect(listed.data?.blobs.edges, `round ${round}`).toEqual([]);
    }

    // The store still works after all that.
    const done = await as(server.url).request('/blobs', {
      method: 'POST',
      body: 'after the crashes',
      headers: { 'x-portico-csrf': '1' },
    });
    expect(done.status).toBe(201);
    expect(await storedObjects()).toHaveLength(1);
    await server.stop();
  });
});
