import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateApiKeyDocument,
  DocumentDocument,
  DocumentsDocument,
  LogInDocument,
  PutDocumentDocument,
} from '../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  signUpClient,
  startGateway,
  type TestClient,
  type TestGateway,
} from './harness.ts';
import { runPortico } from './run-cli.ts';

/** The same declarations on the data server, its edge and the deployment restored from the edge's backup. */
const CONFIG = {
  signup: 'open',
  rateLimits: { signUps: 100 },
  blobs: { write: 'authenticated' },
  collections: {
    notes: {
      read: 'authenticated',
      write: 'authenticated',
      indexes: { bySlug: { fields: ['slug'], unique: true } },
    },
    diary: { read: 'owner', write: 'owner' },
  },
};
const PASSWORD = 'a long enough passphrase';
const CSRF = { 'x-portico-csrf': '1' };

describe.each(backends)('portico backup of an edge whose store is a data server on %s', (backend) => {
  let dataServer: TestGateway;
  let edge: TestGateway;
  let other: TestGateway;
  /** Keys of the data server's admin: the protocol's scope only, and with `admin` as well. */
  let serveKey: string;
  let adminKey: string;
  let alice: TestClient;
  let archiveDir: string;
  const blobBytes = randomBytes(200_000);
  let blobUrl: string;
  /** The generated ids of Alice's diary entries (owner-only documents take no id on creation). */
  const entries: string[] = [];

  const edgeCli = (args: string[], key: string) =>
    runPortico(
      args,
      edge.dataDir,
      {
        PORTICO_DATA_DIR: edge.dataDir,
        DATABASE_URL: edge.databaseUrl,
        PORTICO_REMOTE_API_KEY: key,
      },
      { timeoutMs: 60_000 },
    );

  beforeAll(async () => {
    dataServer = await startGateway({ backend, config: CONFIG });
    const admin = await bootstrapAdmin(dataServer);
    const key = async (scopes: string[]) =>
      (await admin.gql(CreateApiKeyDocument, { name: scopes.join(' '), scopes })).data!.createApiKey.secret;
    serveKey = await key(['store:serve']);
    adminKey = await key(['store:serve', 'admin']);
    const edgeOf = () =>
      startGateway({
        config: CONFIG,
        databaseUrl: `portico+${dataServer.url}`,
        env: { PORTICO_REMOTE_API_KEY: serveKey },
      });
    edge = await edgeOf();
    other = await edgeOf();
    archiveDir = await mkdtemp(join(tmpdir(), 'portico-remote-backup-'));

    alice = await signUpClient(edge, 'alice@example.com', PASSWORD);
    for (let i = 0; i < 30; i++) {
      const put = await alice.gql(PutDocumentDocument, { collection: 'diary', data: { i } });
      expect(put.errors).toBeUndefined();
      entries.push(put.data!.putDocument.id);
    }
    expect(
      (await alice.gql(PutDocumentDocument, { collection: 'notes', id: 'n', data: { slug: 'first' } }))
        .errors,
    ).toBeUndefined();
    const uploaded = await alice.request('/blobs', { method: 'POST', body: blobBytes, headers: CSRF });
    expect(uploaded.status).toBe(201);
    blobUrl = ((await uploaded.json()) as { url: string }).url;
    // Another gateway's user: her document is in the data server's store, her id none of the edge's.
    const bob = await signUpClient(other, 'bob@example.com', PASSWORD);
    expect(
      (await bob.gql(PutDocumentDocument, { collection: 'notes', id: 'b', data: { slug: 'bob' } })).errors,
    ).toBeUndefined();
  });
  afterAll(async () => {
    await edge?.close();
    await other?.close();
    await dataServer?.close();
    if (archiveDir) await rm(archiveDir, { recursive: true, force: true });
  });

  it('takes an archive through the data server while writes go on, which verify passes and a SQLite deployment restores', async () => {
    const file = join(archiveDir, 'edge.tar');
    let writing = true;
    let written = 0;
    const writes = (async () => {
      while (writing) {
        const put = await alice.gql(PutDocumentDocument, { collection: 'diary', data: { during: written } });
        expect(put.errors).toBeUndefined();
        written++;
      }
    })();
    const backup = await edgeCli(['backup', file], adminKey);
    writing = false;
    await writes;
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/backup written to .*edge\.tar: \d+ rows, 1 blob contents/);
    expect(written).toBeGreaterThan(0);

    const verify = await runPortico(['verify', file], archiveDir);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('is sound');
    expect(verify.stdout).toContain('+ remote + remote');

    // A fresh deployment on SQLite with its blobs in its data folder.
    const restoredDir = await mkdtemp(join(tmpdir(), 'portico-restored-'));
    try {
      await writeFile(join(restoredDir, 'portico.config.json'), JSON.stringify(CONFIG));
      const databaseUrl = `sqlite:${join(restoredDir, 'portico.sqlite')}`;
      const restore = await runPortico(['restore', file], restoredDir, {
        PORTICO_DATA_DIR: restoredDir,
        DATABASE_URL: databaseUrl,
      });
      expect(restore.code, restore.stderr).toBe(0);
      const restored = await startGateway({ config: CONFIG, dataDir: restoredDir, databaseUrl });
      try {
        const again = restored.client();
        expect(
          (await again.gql(LogInDocument, { email: 'alice@example.com', password: PASSWORD })).errors,
        ).toBeUndefined();
        // Her documents are hers: owner-only reads find them, with her own user id as their owner.
        const day = await again.gql(DocumentDocument, { collection: 'diary', id: entries[7]! });
        expect(day.data?.document).toMatchObject({ data: { i: 7 }, owner: { email: 'alice@example.com' } });
        const diary = await again.gql(DocumentsDocument, { collection: 'diary', first: 100 });
        expect(diary.errors).toBeUndefined();
        const ids = new Set(diary.data!.documents.edges.map(({ node }) => node.id));
        expect(entries.every((id) => ids.has(id))).toBe(true);
        // The unique index is built from the restored documents.
        const bySlug = await again.gql(DocumentsDocument, {
          collection: 'notes',
          index: 'bySlug',
          where: { eq: { slug: 'first' } },
        });
        expect(bySlug.errors).toBeUndefined();
        expect(bySlug.data!.documents.edges.map(({ node }) => node.id)).toEqual(['n']);
        // The other gateway's document came along, owned by no one here.
        const bobs = await again.gql(DocumentDocument, { collection: 'notes', id: 'b' });
        expect(bobs.data?.document).toMatchObject({ data: { slug: 'bob' }, owner: null });
        const download = await again.request(blobUrl);
        expect(download.status).toBe(200);
        expect(Buffer.from(await download.arrayBuffer()).equals(blobBytes)).toBe(true);
      } finally {
        await restored.stop();
      }
    } finally {
      await rm(restoredDir, { recursive: true, force: true });
    }
  });

  it('refuses the archive calls to a key without the scope admin, also through the command', async () => {
    const backup = await edgeCli(['backup', join(archiveDir, 'refused.tar')], serveKey);
    expect(backup.code).toBe(1);
    expect(backup.stderr).toContain('needs a key with the scope admin');

    const call = (path: string, secret?: string) =>
      fetch(new URL(`/store/v1/archive/${path}`, dataServer.url), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-portico-gateway': 'a'.repeat(32),
          ...(secret ? { authorization: `Bearer ${secret}` } : {}),
        },
        body: '{}',
      });
    for (const path of ['export', 'shapes', 'empty', 'clear', 'loaded']) {
      expect((await call(path)).status).toBe(401);
      const refused = await call(path, serveKey);
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({ code: 'FORBIDDEN', extensions: { scope: 'admin' } });
    }
    // The store itself still serves the edge.
    const day = await alice.gql(DocumentDocument, { collection: 'diary', id: entries[1]! });
    expect(day.data?.document).toMatchObject({ data: { i: 1 } });
  });

  it('answers a bad row of archive/load with 400 and loads none of the call', async () => {
    const load = (body: unknown) =>
      fetch(new URL('/store/v1/archive/load', dataServer.url), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-portico-gateway': 'b'.repeat(32),
          authorization: `Bearer ${adminKey}`,
        },
        body: JSON.stringify(body),
      });
    const row = (id: string, data: unknown = '{"loaded":true}') => ({
      collection: 'notes',
      id,
      data,
      version: 1,
      ownerId: null,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    const cases: unknown[] = [
      { table: 'documents', rows: [row('fine'), { ...row('bad'), version: 'one' }] },
      { table: 'documents', rows: [row('fine'), { ...row('bad'), extra: 1 }] },
      { table: 'documents', rows: [row('fine'), row('bad', '[1, 2')] },
      { table: 'documents', rows: [row('fine'), { ...row('bad'), ownerId: 'x'.repeat(129) }] },
      { table: 'documents', rows: [row('fine'), row('fine')] },
      { table: 'index_entries', rows: [] },
      { table: 'documents', rows: 'none' },
    ];
    for (const body of cases) {
      const refused = await load(body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(await refused.json()).toMatchObject({ code: 'BAD_USER_INPUT' });
    }
    const fine = await alice.gql(DocumentDocument, { collection: 'notes', id: 'fine' });
    expect(fine.data?.document).toBeNull();
  });
});
