// Another process holding SQLite's write lock (a second instance on the same file, a backup, an
// operator's `sqlite3` shell) must not stall the gateway: writes wait for the lock without blocking
// the event loop, /health and reads stay fast, and a write that cannot get the lock in time answers
// SERVICE_UNAVAILABLE having written nothing. Issue 12, item 5.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DocumentsDocument, LogInDocument, PutDocumentDocument, ViewerDocument } from '../../client/index.ts';
import { SQLITE_LOCK_WAIT_MS } from '../../src/sqlite.ts';
import { ADMIN, bootstrapAdmin, startGateway, type TestClient, type TestGateway } from '../harness.ts';
import { expectNoServerError, expectRefusal } from './answers.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** The generous bound the issue asks for: a blocked event loop shows up as seconds, not this. */
const FAST_MS = 1000;

/**
 * A second process holding `BEGIN EXCLUSIVE` on a SQLite file until `release()`. In WAL mode this
 * takes the write lock only: readers go on.
 */
async function holdWriteLock(file: string) {
  const holder: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import Database from 'better-sqlite3';
       const db = new Database(process.argv[1]);
       db.exec('begin exclusive');
       process.stdout.write('locked\\n');
       process.stdin.once('data', () => { db.exec('commit'); db.close(); process.exit(0); });`,
      file,
    ],
    { cwd: ROOT },
  );
  const killOnExit = () => holder.kill('SIGKILL');
  process.once('exit', killOnExit);
  let output = '';
  holder.stdout.on('data', (chunk) => {
    output += chunk;
  });
  holder.stderr.on('data', (chunk) => {
    output += chunk;
  });
  await expect.poll(() => output, { timeout: 10_000 }).toContain('locked');
  return {
    async release() {
      process.off('exit', killOnExit);
      if (holder.exitCode !== null) return;
      const exited = once(holder, 'exit');
      holder.stdin.write('release\n');
      await exited;
    },
  };
}

/**
 * Polls GET /health (and `probe`, if given) every 100 ms until `settled` settles. The gateway runs in
 * this process, so a blocked event loop would also delay the poller: the longest time between two
 * answers catches it whenever it happens, not only while a request is in flight.
 */
async function latenciesUntil(url: string, settled: Promise<unknown>, probe?: () => Promise<unknown>) {
  let done = false;
  void settled.finally(() => {
    done = true;
  });
  let last = performance.now();
  let pause = 0;
  let longestGap = 0;
  let longestProbe = 0;
  let samples = 0;
  while (!done) {
    const response = await fetch(new URL('/health', url));
    expect(response.status).toBe(200);
    samples++;
    if (probe) {
      const start = performance.now();
      await probe();
      longestProbe = Math.max(longestProbe, performance.now() - start);
    }
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last - pause);
    last = now;
    pause = 100;
    await sleep(pause);
  }
  return { health: longestGap, probe: longestProbe, samples };
}

const timed = async <T>(work: Promise<T>) => {
  const start = performance.now();
  const result = await work;
  return { result, ms: performance.now() - start };
};

describe.each([
  { layout: 'one file', split: false },
  { layout: 'two files', split: true },
])('SQLite, system and store in $layout, while another process holds the write lock', ({ split }) => {
  let dataDir: string;
  let portico: TestGateway;
  let admin: TestClient;
  let storeFile: string;
  let systemFile: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portico-lock-'));
    storeFile = join(dataDir, 'store.sqlite');
    systemFile = split ? join(dataDir, 'system.sqlite') : storeFile;
    portico = await startGateway({
      dataDir,
      databaseUrl: `sqlite:${storeFile}`,
      env: { SYSTEM_DATABASE_URL: `sqlite:${systemFile}` },
      config: { collections: { notes: { indexes: { bySlug: { fields: ['slug'], unique: true } } } } },
    });
    admin = await bootstrapAdmin(portico);
    const first = await putNote('first');
    expect(first.errors).toBeUndefined();
  });
  afterAll(async () => {
    await portico?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const rows = async (database: 'system' | 'store', table: string) => {
    const em = portico.gateway.runtime.db[database]!.em.fork();
    const [row] = await em.getConnection().execute<{ n: number }[]>(`select count(*) as n from ${table}`);
    return row!.n;
  };
  const counts = async () => ({
    documents: await rows('store', 'documents'),
    entries: await rows('store', 'index_entries'),
    sessions: await rows('system', 'sessions'),
  });
  const logIn = () => portico.client().gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
  /** The note `slug` written, as `{ slug }`, under the id `slug`. */
  const putNote = (slug: string) =>
    admin.gql(PutDocumentDocument, { collection: 'notes', id: slug, data: { slug } });
  /** A read of each database: the note `first` through its index, and the viewer. */
  const read = async () => {
    const [documents, viewer] = await Promise.all([
      admin.gql(DocumentsDocument, {
        collection: 'notes',
        index: 'bySlug',
        where: { eq: { slug: 'first' } },
      }),
      admin.gql(ViewerDocument),
    ]);
    expect(documents.errors).toBeUndefined();
    expect(documents.data?.documents.edges).toHaveLength(1);
    expect(viewer.errors).toBeUndefined();
    expect(viewer.data?.viewer.user?.email).toBe(ADMIN.email);
  };

  it('keeps /health and reads fast while writes wait, and lands them when the lock is released in time', async () => {
    const lock = await holdWriteLock(storeFile);
    const put = timed(putNote('second'));
    const login = timed(logIn());
    const holding = sleep(1500);
    const latency = await latenciesUntil(portico.url, holding, read);
    await lock.release();
    const [written, loggedIn] = await Promise.all([put, login]);

    expect(written.result.errors).toBeUndefined();
    expect(written.result.data).toMatchObject({ putDocument: { id: 'second', version: 1 } });
    // It waited for the lock rather than failing or skipping it.
    expect(written.ms).toBeGreaterThanOrEqual(1400);
    expect(loggedIn.result.errors).toBeUndefined();
    // Identity in its own file does not wait for the store's lock.
    if (split) expect(loggedIn.ms).toBeLessThan(FAST_MS);
    expect(latency.samples).toBeGreaterThanOrEqual(5);
    expect(latency.health).toBeLessThan(FAST_MS);
    expect(latency.probe).toBeLessThan(FAST_MS);
  });

  it('answers SERVICE_UNAVAILABLE to a store write that cannot get the lock by its deadline, writing nothing', async () => {
    const before = await counts();
    const lock = await holdWriteLock(storeFile);
    let put: Awaited<ReturnType<typeof timed<Awaited<ReturnType<typeof putNote>>>>>;
    try {
      const putting = timed(putNote('late'));
      const latency = await latenciesUntil(portico.url, putting, read);
      put = await putting;
      expect(latency.health).toBeLessThan(FAST_MS);
      expect(latency.probe).toBeLessThan(FAST_MS);
    } finally {
      await lock.release();
    }
    expectRefusal(put.result, 'SERVICE_UNAVAILABLE');
    expect(put.result.status).toBe(503);
    expect(put.result.headers.get('retry-after')).toBeTruthy();
    expect(put.ms).toBeGreaterThanOrEqual(SQLITE_LOCK_WAIT_MS - 100);
    expect(put.ms).toBeLessThan(SQLITE_LOCK_WAIT_MS + 3000);
    expect(await counts()).toEqual(before);

    // The lock is gone: the same write now goes through.
    const again = await putNote('late');
    expect(again.errors).toBeUndefined();
    expect((await counts()).documents).toBe(before.documents + 1);
  });

  it('answers SERVICE_UNAVAILABLE to an identity write that cannot get the lock by its deadline, writing nothing', async () => {
    const before = await counts();
    const lock = await holdWriteLock(systemFile);
    let login: Awaited<ReturnType<typeof timed<Awaited<ReturnType<typeof logIn>>>>>;
    try {
      const loggingIn = timed(logIn());
      const sampling = latenciesUntil(portico.url, loggingIn);
      // A store write meanwhile: it waits too when the files are one, and is not held up otherwise.
      const put = await timed(putNote('during'));
      if (split) {
        expect(put.result.errors).toBeUndefined();
        expect(put.ms).toBeLessThan(FAST_MS);
      } else {
        expectRefusal(put.result, 'SERVICE_UNAVAILABLE');
      }
      login = await loggingIn;
      expect((await sampling).health).toBeLessThan(FAST_MS);
    } finally {
      await lock.release();
    }
    expectRefusal(login.result, 'SERVICE_UNAVAILABLE');
    expect(login.result.status).toBe(503);
    expect(login.ms).toBeGreaterThanOrEqual(SQLITE_LOCK_WAIT_MS - 100);
    const after = await counts();
    expect(after.sessions).toBe(before.sessions);
    expect(after.documents).toBe(before.documents + (split ? 1 : 0));
    expectNoServerError(await logIn());
    expect((await logIn()).errors).toBeUndefined();
  });
});
