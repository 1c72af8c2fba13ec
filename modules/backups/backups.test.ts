import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateApiKeyDocument,
  DeleteBlobDocument,
  DocumentsDocument,
  PutDocumentDocument,
  StoreBackendDocument,
  SwitchStoreBackendDocument,
  ViewerDocument,
} from '../../client/index.ts';
import {
  type Backend,
  backends,
  bootstrapAdmin,
  codeOf,
  createTestDatabase,
  startGateway,
  startTestBucket,
  TEST_SECRET,
  TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { BIN, runPortico } from '../../test/run-cli.ts';
import blobsModule from '../blobs/index.ts';
import { readArchive } from './archive.ts';
import { takeBackup } from './backup.ts';

const CONFIG = {
  collections: {
    notes: {
      indexes: { bySlug: { fields: ['slug'], unique: true }, byTopic: ['topic'] },
      read: 'authenticated',
      write: 'authenticated',
    },
  },
};
const CSRF = { 'x-portico-csrf': '1' };
const TOPICS = ['red', 'green', 'blue'];

interface Note {
  id: string;
  version: number;
  data: { n: number; slug: string; topic: string; blob: string };
}

/** The other database kind, so that every restore crosses kinds when PostgreSQL is there. */
const otherThan = (backend: Backend): Backend =>
  backends.includes('postgres') ? (backend === 'sqlite' ? 'postgres' : 'sqlite') : 'sqlite';

/** A deployment the CLI restores into: its own data folder and an empty database. */
async function emptyDeployment(backend: Backend, env: Record<string, string> = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'portico-restore-'));
  await writeFile(join(dataDir, 'portico.config.json'), JSON.stringify(CONFIG));
  const database = await createTestDatabase(backend, dataDir);
  return {
    backend,
    dataDir,
    database,
    env: { PORTICO_DATA_DIR: dataDir, DATABASE_URL: database.url, ...env },
    async drop() {
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
type Deployment = Awaited<ReturnType<typeof emptyDeployment>>;

/**
 * A gateway on a restored deployment, and a client of it with `signedIn`'s cookies: the same
 * secret, so the source's sessions go on working there.
 */
async function startRestored(target: Deployment, signedIn: TestClient, env: Record<string, string> = {}) {
  const gateway = await startGateway({
    backend: target.backend,
    databaseUrl: target.database.url,
    dataDir: target.dataDir,
    config: CONFIG,
    env,
  });
  const client = new TestClient(gateway.url);
  for (const [name, value] of signedIn.cookies) client.cookies.set(name, value);
  return { gateway, client };
}

const cli = (args: string[], deployment: { dataDir: string; env: Record<string, string> }) =>
  runPortico(args, deployment.dataDir, deployment.env, { timeoutMs: 120_000 });

async function allNotes(client: TestClient): Promise<Note[]> {
  const notes: Note[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await client.gql(DocumentsDocument, { collection: 'notes', first: 100, after });
    if (page.errors) throw new Error(JSON.stringify(page.errors));
    notes.push(...page.data!.documents.edges.map((edge) => edge.node as unknown as Note));
    if (!page.data!.documents.pageInfo.hasNextPage) return notes;
    after = page.data!.documents.pageInfo.endCursor!;
  }
}

async function idsByTopic(client: TestClient, topic: string): Promise<string[]> {
  const page = await client.gql(DocumentsDocument, {
    collection: 'notes',
    index: 'byTopic',
    where: { eq: { topic } },
    first: 100,
  });
  if (page.errors) throw new Error(JSON.stringify(page.errors));
  return page.data!.documents.edges.map((edge) => edge.node.id).sort();
}

describe.each(backends)('portico backup and restore, from %s', { timeout: 120_000 }, (backend) => {
  let source: TestGateway;
  let admin: TestClient;
  let folder: string;
  let apiKey: string;
  const targets: Deployment[] = [];
  const started: TestGateway[] = [];

  async function upload(bytes: Uint8Array<ArrayBuffer>): Promise<{ id: string; sha256: string }> {
    const response = await admin.request('/blobs', { method: 'POST', body: bytes, headers: CSRF });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; sha256: string };
  }

  /** Creates or replaces a note: its `n` is the version it will have, so a torn one shows. */
  async function put(id: string, n: number, blob: string) {
    const data = { n, slug: `slug-${id}`, topic: TOPICS[n % TOPICS.length]!, blob };
    const result = await admin.gql(PutDocumentDocument, {
      collection: 'notes',
      id,
      data,
      expectedVersion: n - 1,
    });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    expect(result.data!.putDocument.version).toBe(n);
  }

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'portico-backups-'));
    source = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(source);
    const key = await admin.gql(CreateApiKeyDocument, { name: 'backup', scopes: ['notes:read'] });
    apiKey = key.data!.createApiKey.secret;
    const shared = await upload(randomBytes(300_000));
    for (let i = 0; i < 40; i++) {
      const blob = i % 4 === 0 ? (await upload(randomBytes(1000 + i))).id : shared.id;
      await put(`note-${i}`, 1, blob);
    }
  });
  afterAll(async () => {
    await Promise.all(started.map((gateway) => gateway.close()));
    await Promise.all(targets.map((target) => target.drop()));
    await source?.close();
    await rm(folder, { recursive: true, force: true });
  });

  const sourceDeployment = () => ({
    dataDir: source.dataDir,
    env: { PORTICO_DATA_DIR: source.dataDir, DATABASE_URL: source.databaseUrl },
  });

  /** A backup taken while a writer replaces notes and uploads blobs; what was acknowledged before it began. */
  async function backupUnderLoad(file: string) {
    const acknowledged = new Map((await allNotes(admin)).map((note) => [note.id, note.version]));
    let writing = true;
    const writer = (async () => {
      let round = 0;
      while (writing) {
        const i = round++ % 40;
        const id = `note-${i}`;
        const blob = (await upload(randomBytes(2000 + round))).id;
        const current = (await allNotes(admin)).find((note) => note.id === id)!;
        await put(id, current.version + 1, blob);
        await put(`late-${round}`, 1, blob);
      }
      return round;
    })();
    const run = await cli(['backup', file], sourceDeployment());
    writing = false;
    const rounds = await writer;
    return { run, acknowledged, rounds };
  }

  it('takes a backup under concurrent writes that restores into the other database kind, whole and consistent', async () => {
    const file = join(folder, 'under-load.tar');
    const { run, acknowledged, rounds } = await backupUnderLoad(file);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^backup written to .*under-load\.tar: \d+ rows, \d+ blob contents/m);
    expect(rounds).toBeGreaterThan(0);
    expect((await readdir(folder)).filter((name) => name.includes('partial'))).toEqual([]);

    const verified = await runPortico(['verify', file], folder, {});
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain('is sound');

    const target = await emptyDeployment(otherThan(backend));
    targets.push(target);
    const restored = await cli(['restore', file], target);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(/^restored .* \d+ rows, \d+ blob contents/m);

    // The same secret: the admin's session cookie and API key go on working.
    const { gateway: restoredGateway, client: sameAdmin } = await startRestored(target, admin);
    started.push(restoredGateway);
    const viewer = await sameAdmin.gql(ViewerDocument);
    expect(viewer.data?.viewer?.user?.email).toBe('admin@example.com');
    const byKey = await new TestClient(restoredGateway.url).gql(
      DocumentsDocument,
      { collection: 'notes', first: 1 },
      { authorization: `Bearer ${apiKey}` },
    );
    expect(byKey.errors).toBeUndefined();

    const notes = await allNotes(sameAdmin);
    const byId = new Map(notes.map((note) => [note.id, note]));
    // Every write acknowledged before the backup began is there, each note at one consistent version.
    for (const [id, version] of acknowledged) expect(byId.get(id)?.version).toBeGreaterThanOrEqual(version);
    for (const note of notes) expect(note.data.n).toBe(note.version);
    // No note points at a missing blob: every one downloads, with the bytes its SHA-256 names.
    const blobs = new Set(notes.map((note) => note.data.blob));
    for (const id of blobs) {
      const response = await sameAdmin.request(`/blobs/${id}`);
      expect(response.status).toBe(200);
      const bytes = Buffer.from(await response.arrayBuffer());
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(
        response.headers.get('etag')?.replaceAll('"', ''),
      );
    }
    // The indexes were rebuilt: each query equals the notes it should find, and unique still refuses.
    for (const topic of TOPICS) {
      const expected = notes
        .filter((note) => note.data.topic === topic)
        .map((note) => note.id)
        .sort();
      expect(await idsByTopic(sameAdmin, topic)).toEqual(expected);
    }
    const duplicate = await sameAdmin.gql(PutDocumentDocument, {
      collection: 'notes',
      id: 'another',
      data: { slug: notes[0]!.data.slug },
    });
    expect(codeOf(duplicate)).toBe('CONFLICT');
  });

  it('refuses a target that is not empty unless --force, which replaces what it holds', async () => {
    const file = join(folder, 'force.tar');
    expect((await cli(['backup', file], sourceDeployment())).code).toBe(0);
    const target = await emptyDeployment(otherThan(backend));
    targets.push(target);
    expect((await cli(['restore', file], target)).code).toBe(0);

    const again = await cli(['restore', file], target);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is not empty \(.*users.*\): .*--force/);
    const forced = await cli(['restore', file, '--force'], target);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);

    const { gateway, client } = await startRestored(target, admin);
    started.push(gateway);
    expect((await allNotes(client)).length).toBe((await allNotes(admin)).length);
  });

  it('fails verify and restore on a changed byte or a truncated file, and changes nothing', async () => {
    const file = join(folder, 'good.tar');
    expect((await cli(['backup', file], sourceDeployment())).code).toBe(0);
    const size = (await stat(file)).size;

    const flipped = join(folder, 'flipped.tar');
    await copyFile(file, flipped);
    const bytes = await readFile(flipped);
    // Inside the first blob's bytes, past the header entry.
    const at = bytes.indexOf(Buffer.from('blobs/')) + 512 + 100;
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(flipped, bytes);

    const truncated = join(folder, 'truncated.tar');
    await copyFile(file, truncated);
    await truncate(truncated, Math.floor(size * 0.7));

    const target = await emptyDeployment(backend);
    targets.push(target);
    for (const [damaged, message] of [
      [flipped, /do not match their SHA-256: the file is damaged/],
      [truncated, /truncated/],
    ] as const) {
      const verified = await runPortico(['verify', damaged], folder, {});
      expect(verified.code).toBe(1);
      expect(verified.stderr).toMatch(message);
      const restored = await cli(['restore', damaged], target);
      expect(restored.code).toBe(1);
      expect(restored.stderr).toMatch(message);
    }
    // Nothing changed: the good archive restores without --force.
    const restored = await cli(['restore', file], target);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
  });

  it('records the last backup for the console', async () => {
    const file = join(folder, 'recorded.tar');
    expect((await cli(['backup', file], sourceDeployment())).code).toBe(0);
    const last = await admin.gql<{ lastBackup: { file: string; bytes: number; finishedAt: string } | null }>(
      '{ lastBackup { file bytes finishedAt } }',
    );
    expect(last.data?.lastBackup?.file).toBe(file);
    expect(last.data?.lastBackup?.bytes).toBe((await stat(file)).size);
    const stranger = await new TestClient(source.url).gql('{ lastBackup { file } }');
    expect(codeOf(stranger)).toBe('UNAUTHENTICATED');
  });
});

/** Blob bytes moving between storages with a backup and a restore (and the database kind with them). */
const moves = [
  { from: 'sqlite' as Backend, fromBytes: 'file', to: 'sqlite' as Backend, toBytes: 's3' },
  ...(backends.includes('postgres')
    ? [{ from: 'postgres' as Backend, fromBytes: 'database', to: 'sqlite' as Backend, toBytes: 'file' }]
    : []),
];

describe.each(moves)(
  'portico restore: bytes in $fromBytes on $from to $toBytes on $to',
  { timeout: 120_000 },
  (move) => {
    it('moves every blob, byte for byte', async () => {
      const bytesIn = (kind: string): Record<string, string> =>
        kind === 'database' ? { BLOB_STORAGE_URL: 'database' } : {};
      const source = await startGateway({ backend: move.from, config: CONFIG, env: bytesIn(move.fromBytes) });
      const bucket = move.toBytes === 's3' ? await startTestBucket() : undefined;
      const target = await emptyDeployment(move.to, { ...bytesIn(move.toBytes), ...bucket?.env });
      const folder = await mkdtemp(join(tmpdir(), 'portico-backups-move-'));
      try {
        const admin = await bootstrapAdmin(source);
        // Past a multipart part and a database chunk.
        const bytes = randomBytes(6 * 1024 * 1024);
        const response = await admin.request('/blobs', { method: 'POST', body: bytes, headers: CSRF });
        const blob = (await response.json()) as { id: string };
        const file = join(folder, 'moved.tar');
        const env = {
          PORTICO_DATA_DIR: source.dataDir,
          DATABASE_URL: source.databaseUrl,
          ...bytesIn(move.fromBytes),
        };
        expect((await runPortico(['backup', file], source.dataDir, env)).code).toBe(0);
        const restored = await cli(['restore', file], target);
        expect(restored.stderr).toBe('');
        expect(restored.code).toBe(0);

        const { gateway, client } = await startRestored(target, admin, {
          ...bytesIn(move.toBytes),
          ...bucket?.env,
        });
        try {
          const download = await client.request(`/blobs/${blob.id}`);
          expect(download.status).toBe(200);
          expect(Buffer.from(await download.arrayBuffer()).equals(bytes)).toBe(true);
        } finally {
          await gateway.close();
        }
      } finally {
        await source.close();
        await target.drop();
        await bucket?.s3.close();
        await rm(folder, { recursive: true, force: true });
      }
    });
  },
);

describe('a backup killed with SIGKILL', { timeout: 120_000 }, () => {
  it('leaves no archive under the target name', async () => {
    const source = await startGateway({ config: { ...CONFIG, blobs: { maxBytes: 32 * 1024 * 1024 } } });
    const folder = await mkdtemp(join(tmpdir(), 'portico-backups-kill-'));
    try {
      const admin = await bootstrapAdmin(source);
      // Enough bytes that the backup is still writing when it is killed.
      for (let i = 0; i < 4; i++) {
        const response = await admin.request('/blobs', {
          method: 'POST',
          body: randomBytes(32 * 1024 * 1024),
          headers: CSRF,
        });
        expect(response.status).toBe(201);
      }
      const file = join(folder, 'killed.tar');
      const child = spawn(process.execPath, [BIN, 'backup', file], {
        cwd: source.dataDir,
        env: {
          PATH: process.env.PATH ?? '',
          PORTICO_SECRET: TEST_SECRET,
          PORTICO_DATA_DIR: source.dataDir,
          DATABASE_URL: source.databaseUrl,
        },
      });
      const exited = once(child, 'exit');
      // Killed once the archive is being written.
      await expect
        .poll(async () => (await readdir(folder)).some((name) => name.includes('.partial-')), {
          timeout: 30_000,
          interval: 5,
        })
        .toBe(true);
      child.kill('SIGKILL');
      await exited;
      expect((await readdir(folder)).filter((name) => !name.includes('.partial-'))).toEqual([]);
    } finally {
      await source.close();
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('portico backup into a folder that cannot take it', { timeout: 60_000 }, () => {
  it('fails at once with the reason and writes nothing', async () => {
    const deployment = await emptyDeployment('sqlite');
    try {
      const run = await cli(['backup', join(deployment.dataDir, 'missing', 'backup.tar')], deployment);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^ENOENT: no such file or directory/);
      expect((await readdir(deployment.dataDir)).filter((name) => name.includes('partial'))).toEqual([]);
    } finally {
      await deployment.drop();
    }
  });
});

describe('portico restore of a deployment whose admin switched its store', { timeout: 120_000 }, () => {
  it('restores into the target’s own store, which the target goes on using', async () => {
    const source = await startGateway({ config: CONFIG });
    const target = await emptyDeployment('sqlite');
    const folder = await mkdtemp(join(tmpdir(), 'portico-backups-switched-'));
    try {
      const admin = await bootstrapAdmin(source);
      const switched = await admin.gql(SwitchStoreBackendDocument, { url: 'sqlite:switched.sqlite' });
      expect(switched.errors).toBeUndefined();
      const put = await admin.gql(PutDocumentDocument, {
        collection: 'notes',
        id: 'in-switched',
        data: { slug: 'a' },
      });
      expect(put.errors).toBeUndefined();
      const file = join(folder, 'switched.tar');
      const env = { PORTICO_DATA_DIR: source.dataDir, DATABASE_URL: source.databaseUrl };
      expect((await runPortico(['backup', file], source.dataDir, env)).code).toBe(0);
      const restored = await cli(['restore', file], target);
      expect(restored.stderr).toBe('');
      expect(restored.code).toBe(0);

      const { gateway, client } = await startRestored(target, admin);
      try {
        // Not the source's choice (a file of the source's data folder): the target's DATABASE_URL.
        const store = await client.gql(StoreBackendDocument);
        expect(store.data?.storeBackend.source).toBe('ENVIRONMENT');
        expect(store.data?.storeBackend.url).toContain(target.dataDir);
        expect((await allNotes(client)).map((note) => note.id)).toEqual(['in-switched']);
      } finally {
        await gateway.close();
      }
    } finally {
      await source.close();
      await target.drop();
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('a blob deleted while a backup runs', { timeout: 120_000 }, () => {
  it('is left out with its rows, and the archive restores', async () => {
    const source = await startGateway({ config: CONFIG });
    const target = await emptyDeployment('sqlite');
    const folder = await mkdtemp(join(tmpdir(), 'portico-backups-deleted-'));
    try {
      const admin = await bootstrapAdmin(source);
      const post = async (bytes: Uint8Array<ArrayBuffer>) => {
        const response = await admin.request('/blobs', { method: 'POST', body: bytes, headers: CSRF });
        return (await response.json()) as { id: string; sha256: string };
      };
      const kept = await post(randomBytes(5000));
      const doomed = await post(randomBytes(7000));
      const { runtime } = source.gateway;
      const storage = runtime.instances.of(blobsModule).storage;
      // Deleted (its bytes with it) after the store's snapshot began, just before they are copied.
      const deleting = {
        ...storage,
        async read(...args: Parameters<typeof storage.read>) {
          if (args[0] === doomed.sha256) {
            const deleted = await admin.gql(DeleteBlobDocument, { id: doomed.id });
            expect(deleted.errors).toBeUndefined();
          }
          return storage.read(...args);
        },
      };
      const file = join(folder, 'deleted.tar');
      const taken = await takeBackup(runtime, deleting, file, { bar: () => () => {}, stop() {} });
      expect(taken.leftOut).toBe(1);
      expect(taken.blobs).toBe(1);
      const { manifest } = await readArchive(file);
      expect(manifest.blobs).toMatchObject({ count: 1, leftOut: 1 });
      expect(manifest.rows['store/blobs']).toBe(1);

      const restored = await cli(['restore', file], target);
      expect(restored.stderr).toBe('');
      expect(restored.code).toBe(0);
      const { gateway, client } = await startRestored(target, admin);
      try {
        expect((await client.request(`/blobs/${kept.id}`)).status).toBe(200);
        expect((await client.request(`/blobs/${doomed.id}`)).status).toBe(404);
      } finally {
        await gateway.close();
      }
    } finally {
      await source.close();
      await target.drop();
      await rm(folder, { recursive: true, force: true });
    }
  });
});
