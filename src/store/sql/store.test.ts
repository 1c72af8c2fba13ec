import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestDatabase, type TestDatabase } from '../../../test/harness.ts';
import { type Databases, openDatabases } from '../../db.ts';
import { createLocalPubSub } from '../../pubsub/local.ts';
import type { PubSub } from '../../pubsub.ts';
import type { DocumentChange, StoreBackend, StoreCollection } from '../backend.ts';
import { openStore } from '../open.ts';

const log = pino({ level: 'silent' });

const notes: StoreCollection = {
  name: 'notes',
  indexes: new Map([
    ['bySlug', { name: 'bySlug', fields: ['slug'], unique: true }],
    ['byRank', { name: 'byRank', fields: ['group', 'rank'], unique: false }],
  ]),
};
const body = (data: Record<string, unknown>) => ({ data, text: JSON.stringify(data) });
const newNote = (id: string, data: Record<string, unknown>) => ({
  collection: notes,
  id,
  ownerOfNew: null,
  body: body(data),
});

/** The StoreBackend contract as modules rely on it, through the interface alone. */
describe.each(backends)('the SQL store backend on %s', (backend) => {
  let dir: string;
  let database: TestDatabase;
  let databases: Databases;
  let pubsub: PubSub;
  let store: StoreBackend;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-store-'));
    database = await createTestDatabase(backend, dir);
    databases = await openDatabases({
      env: { databaseUrl: database.url, systemDatabaseUrl: database.url },
      modules: [],
      log,
    });
    pubsub = createLocalPubSub(log);
    store = openStore(databases, pubsub, log, database.url);
    await store.documents.prepare([notes]);
  });
  afterAll(async () => {
    await pubsub?.close();
    await databases?.close();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes compare-and-set: of writers of the same version one wins, the others get CONFLICT', async () => {
    const created = await store.documents.write({ ...newNote('cas', { slug: 'cas' }), expectedVersion: 0 });
    expect(created).toMatchObject({ kind: 'CREATED', document: { version: 1 } });
    const racing = await Promise.allSettled(
      [1, 2, 3].map((n) =>
        store.documents.write({ ...newNote('cas', { slug: 'cas', n }), expectedVersion: 1 }),
      ),
    );
    expect(racing.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of racing.filter((result) => result.status === 'rejected')) {
      expect(result.reason).toMatchObject({ code: 'CONFLICT' });
    }
    await expect(
      store.documents.write({ ...newNote('cas', { slug: 'cas' }), expectedVersion: 1 }),
    ).rejects.toMatchObject({ code: 'CONFLICT', extensions: { currentVersion: 2 } });
    await expect(
      store.documents.write({ ...newNote('cas', { slug: 'cas' }), expectedVersion: 0 }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await store.documents.get('notes', 'cas'))?.version).toBe(2);
    await expect(
      store.documents.delete({ collection: 'notes', id: 'cas', expectedVersion: 1 }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await store.documents.get('notes', 'cas')).not.toBeNull();
  });

  it('refuses a second document with a unique value, and the refused write leaves nothing', async () => {
    await store.documents.write(newNote('u1', { slug: 'taken' }));
    await expect(store.documents.write(newNote('u2', { slug: 'taken' }))).rejects.toMatchObject({
      code: 'CONFLICT',
      extensions: { index: 'bySlug' },
    });
    expect(await store.documents.get('notes', 'u2')).toBeNull();
    const bySlug = notes.indexes.get('bySlug')!;
    expect(
      await store.documents.count({ collection: 'notes', index: bySlug, range: { equal: ['taken'] } }),
    ).toBe(1);
    // A document without the field is not held unique.
    await store.documents.write(newNote('u3', { other: 1 }));
    await store.documents.write(newNote('u4', { other: 2 }));
  });

  it('lets a write through only with the latest token of its fence, checked within the write', async () => {
    const first = await store.leases.acquire('fence', 'h1', 60_000);
    expect(first?.token).toBe(1);
    expect(await store.leases.release('fence', 'h1', 1)).toBe(true);
    expect((await store.leases.acquire('fence', 'h2', 60_000))?.token).toBe(2);
    const stale = { lease: 'fence', token: 1 };
    const latest = { lease: 'fence', token: 2 };

    await expect(
      store.documents.write({ ...newNote('fenced', { slug: 'f' }), fence: stale }),
    ).rejects.toMatchObject({ code: 'FENCE_REJECTED' });
    expect(await store.documents.get('notes', 'fenced')).toBeNull();
    await store.documents.write({ ...newNote('fenced', { slug: 'f' }), fence: latest });
    await expect(
      store.documents.delete({ collection: 'notes', id: 'fenced', fence: stale }),
    ).rejects.toMatchObject({
      code: 'FENCE_REJECTED',
    });
    expect(await store.documents.get('notes', 'fenced')).not.toBeNull();

    let placed = false;
    const blob = blobRecord('f'.repeat(64));
    const place = async () => {
      placed = true;
    };
    await expect(
      store.blobs.create(blob, { fence: stale, staged: stagedOf(blob), place }),
    ).rejects.toMatchObject({
      code: 'FENCE_REJECTED',
    });
    expect(placed).toBe(false);
    expect(await store.blobs.find(blob.id)).toBeNull();

    await expect(store.leases.checkFence(latest)).resolves.toBeUndefined();
    await expect(store.leases.checkFence(stale)).rejects.toMatchObject({ code: 'FENCE_REJECTED' });
    await expect(store.leases.checkFence({ lease: 'never granted', token: 1 })).rejects.toMatchObject({
      code: 'FENCE_REJECTED',
    });
  });

  it('reads an index range in key order, a page at a time, and counts it', async () => {
    for (const [id, group, rank] of [
      ['r1', 'g', 1],
      ['r2', 'g', 2],
      ['r3', 'g', 3],
      ['r4', 'g', 4],
      ['r5', 'h', 2],
    ] as const) {
      await store.documents.write(newNote(id, { group, rank }));
    }
    const byRank = notes.indexes.get('byRank')!;
    const range = {
      equal: ['g'],
      lower: { value: 2, inclusive: true },
      upper: { value: 4, inclusive: false },
    };
    const selection = { collection: 'notes', index: byRank, range };
    const first = await store.documents.query({ ...selection, order: 'ASC', first: 1 });
    expect(first.items.map((item) => item.document.id)).toEqual(['r2']);
    expect(first.hasNextPage).toBe(true);
    const last = first.items.at(-1)!;
    const next = await store.documents.query({
      ...selection,
      order: 'ASC',
      first: 5,
      after: { position: last.position, id: last.document.id },
    });
    expect(next.items.map((item) => item.document.id)).toEqual(['r3']);
    expect(next.hasNextPage).toBe(false);
    expect(await store.documents.count(selection)).toBe(2);
    const descending = await store.documents.query({
      collection: 'notes',
      index: byRank,
      range: { equal: ['g'] },
      order: 'DESC',
      first: 10,
    });
    expect(descending.items.map((item) => item.document.id)).toEqual(['r4', 'r3', 'r2', 'r1']);
  });

  it('refuses an index key past its limit, naming the index, before anything is written', async () => {
    await expect(store.documents.write(newNote('long', { slug: 'x'.repeat(2000) }))).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      extensions: { index: 'bySlug', limit: 1024 },
    });
    await store.documents.write(newNote('long', { slug: 'short' }));
    await expect(
      store.documents.write({ ...newNote('long', {}), body: () => body({ slug: 'x'.repeat(2000) }) }),
    ).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    expect((await store.documents.get('notes', 'long'))?.data).toEqual({ slug: 'short' });
  });

  it('raises document.changed once a write commits, with the written version for this instance', async () => {
    const changes = store.events.subscribe('document.changed')[Symbol.asyncIterator]();
    const raised: DocumentChange[] = [];
    const stop = store.events.on('document.changed', (change) => raised.push(change));
    try {
      await expect(
        store.documents.write({ ...newNote('refused', { slug: 'refused' }), expectedVersion: 5 }),
      ).rejects.toMatchObject({ code: 'CONFLICT' });
      const written = await store.documents.write(newNote('evented', { slug: 'evented' }));
      const change = (await changes.next()).value as DocumentChange;
      expect(change).toEqual({
        kind: 'CREATED',
        collection: 'notes',
        id: 'evented',
        version: 1,
        ownerId: null,
      });
      expect(await store.documents.changed(change)).toBe(written.document);
      await store.documents.delete({ collection: 'notes', id: 'evented' });
      expect(raised.map((event) => `${event.kind} ${event.id}`)).toEqual([
        'CREATED evented',
        'DELETED evented',
      ]);
      expect(await store.documents.changed(raised[1]!)).toBeNull();
    } finally {
      stop();
      await changes.return?.();
    }
  });

  it('drops blob bytes under the content lock only with their last reference', async () => {
    const sha256 = 'a'.repeat(64);
    const placedFor: string[] = [];
    const dropped: string[] = [];
    const drop = async (sha: string) => {
      dropped.push(sha);
    };
    const one = blobRecord(sha256);
    const two = blobRecord(sha256);
    for (const blob of [one, two]) {
      await store.blobs.create(blob, {
        staged: stagedOf(blob),
        place: async () => {
          placedFor.push(blob.id);
        },
      });
    }
    expect(placedFor).toEqual([one.id, two.id]);
    expect(
      (await store.blobs.findMany([one.id, two.id, 'f'.repeat(32)])).map((blob) => blob.id).sort(),
    ).toEqual([one.id, two.id].sort());
    const refused = new Error('not yours');
    await expect(
      store.blobs.delete(one.id, {
        guard: () => {
          throw refused;
        },
        drop,
      }),
    ).rejects.toBe(refused);
    expect(await store.blobs.delete(one.id, { guard: () => {}, drop })).toBe(true);
    expect(dropped).toEqual([]);
    expect(await store.blobs.delete(two.id, { guard: () => {}, drop })).toBe(true);
    expect(dropped).toEqual([sha256]);
    expect(await store.blobs.delete(two.id, { guard: () => {}, drop })).toBe(false);
  });

  it('grants a lease to one holder at a time with growing tokens, and raises lease.released', async () => {
    const released: string[] = [];
    const stop = store.events.on('lease.released', ({ key }) => released.push(key));
    try {
      expect(await store.leases.acquire('job', 'j1', 60_000)).toMatchObject({
        key: 'job',
        holder: 'j1',
        token: 1,
      });
      expect(await store.leases.acquire('job', 'j2', 60_000)).toBeNull();
      expect(await store.leases.renew('job', 'j2', 1, 60_000)).toBeNull();
      expect(await store.leases.renew('job', 'j1', 1, 120_000)).toMatchObject({ token: 1 });
      expect(await store.leases.release('job', 'j2', 1)).toBe(false);
      expect(released).toEqual([]);
      expect(await store.leases.release('job', 'j1', 1)).toBe(true);
      expect(released).toEqual(['job']);
      expect(await store.leases.acquire('job', 'j2', 60_000)).toMatchObject({ token: 2 });
      expect(await store.leases.liveHolders()).toContain('j2');
      expect((await store.leases.find('job'))?.lease).toMatchObject({ holder: 'j2', token: 2 });
      expect(
        (await store.leases.list({ prefix: 'jo', after: undefined, limit: 10 })).map((l) => l.key),
      ).toEqual(['job']);
      expect(await store.leases.releaseHeldBy(['j2', 'nobody'])).toEqual(['job']);
      expect(released).toEqual(['job', 'job']);
      expect(await store.leases.find('job')).toBeNull();
    } finally {
      stop();
    }
  });
});

let blobs = 0;
const blobRecord = (sha256: string) => ({
  id: (++blobs).toString(16).padStart(32, '0'),
  sha256,
  size: 3,
  contentType: 'text/plain',
  filename: null,
  ownerId: null,
  createdAt: new Date(),
});

/** The staged upload a blob's bytes came from; the SQL backend only runs `place`. */
const stagedOf = (blob: { sha256: string; size: number }) => ({
  key: 'staged',
  sha256: blob.sha256,
  size: blob.size,
});
