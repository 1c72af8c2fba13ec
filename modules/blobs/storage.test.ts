import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readlink, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BlobStorage, BlobTooLarge, UploadInterrupted } from '../../src/index.ts';
import { cleanFilename, mediaType } from './service.ts';
import { createFsStorage } from './storage.ts';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A source that hands out `chunks` and records whether anyone cancelled it. */
function source(chunks: Uint8Array[], failAt?: number) {
  const state = { cancelled: false };
  let index = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (index === failAt) controller.error(new Error('connection reset'));
      else if (index < chunks.length) controller.enqueue(chunks[index]!);
      else controller.close();
      index++;
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

/** The files this process has open at a content address. */
async function openFiles(address: string) {
  const targets = await Promise.all(
    (await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')),
  );
  return targets.filter((target) => target.includes(address));
}

const text = async (stream: ReadableStream<Uint8Array> | null) =>
  stream ? Buffer.from(await new Response(stream).arrayBuffer()) : null;

describe('the filesystem storage driver', () => {
  let root: string;
  let storage: BlobStorage;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'portico-storage-'));
    storage = await createFsStorage(root);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('stages, commits to the content address, reads ranges, and deletes', async () => {
    const bytes = randomBytes(300_000);
    const staged = await storage.stage(
      source([bytes.subarray(0, 100_000), bytes.subarray(100_000)]).stream,
      1e6,
    );
    expect(staged).toMatchObject({ sha256: sha256(bytes), size: bytes.length });
    expect(await storage.exists(staged.sha256)).toBe(false);
    await storage.commit(staged);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
    expect(await readdir(join(root, 'sha256', staged.sha256.slice(0, 2)))).toEqual([staged.sha256]);
    expect(await storage.exists(staged.sha256)).toBe(true);
    expect((await text(await storage.read(staged.sha256)))!.equals(bytes)).toBe(true);
    const part = await text(await storage.read(staged.sha256, { start: 299_990, end: 299_999 }));
    expect(part!.equals(bytes.subarray(299_990))).toBe(true);
    await storage.delete(staged.sha256);
    expect(await storage.exists(staged.sha256)).toBe(false);
    expect(await storage.read(staged.sha256)).toBeNull();
    await storage.delete(staged.sha256);
  });

  it('stops at limit + 1 without cancelling the source, and keeps nothing', async () => {
    const { stream, state } = source([randomBytes(600), randomBytes(401), randomBytes(5000)]);
    await expect(storage.stage(stream, 1000)).rejects.toBeInstanceOf(BlobTooLarge);
    expect(state.cancelled).toBe(false);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
    const exact = await storage.stage(source([randomBytes(600), randomBytes(400)]).stream, 1000);
    expect(exact.size).toBe(1000);
  });

  it('drops what it wrote when the source fails', async () => {
    const { stream } = source([randomBytes(600), randomBytes(600)], 2);
    await expect(storage.stage(stream, 1e6)).rejects.toBeInstanceOf(UploadInterrupted);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });

  it('stops reading and closes the file when the signal aborts', async () => {
    const bytes = randomBytes(8 * 1024 * 1024);
    const staged = await storage.stage(source([bytes]).stream, bytes.length);
    await storage.commit(staged);
    const controller = new AbortController();
    const reader = (await storage.read(staged.sha256, undefined, controller.signal))!.getReader();
    expect((await reader.read()).value?.byteLength).toBeGreaterThan(0);
    expect(await openFiles(staged.sha256)).toHaveLength(1);
    controller.abort();
    // The stream ends, far short of the file.
    let received = 0;
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      received += chunk.value.byteLength;
    expect(received).toBeLessThan(bytes.length / 2);
    await expect.poll(() => openFiles(staged.sha256)).toEqual([]);
  });

  it('frees the disposable chunks it wrote that span their buffer, and no others', async () => {
    // Each in an ArrayBuffer of its own, as Node reads a request body; the last a view into a larger one.
    const own = [new Uint8Array(randomBytes(100_000)), new Uint8Array(randomBytes(70_000))];
    const shared = new Uint8Array(randomBytes(200_000));
    const view = shared.subarray(1000, 51_000);
    const expected = sha256(Buffer.concat([...own, view]));
    const disposable = await storage.stage(source([...own, view]).stream, 1e6, { disposableChunks: true });
    expect(disposable.sha256).toBe(expected);
    expect(own.map((chunk) => chunk.buffer.detached)).toEqual([true, true]);
    expect(shared.buffer.detached).toBe(false);

    const kept = [new Uint8Array(randomBytes(100_000))];
    await storage.stage(source(kept).stream, 1e6);
    expect(kept[0]!.buffer.detached).toBe(false);
  });

  it("reads into a BYOB reader's buffers, a range from where it starts", async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 7);
    await storage.commit(await storage.stage(source([bytes]).stream, bytes.length));
    const reader = (await storage.read(sha256(bytes), { start: 10, end: 2 * 1024 * 1024 + 9 }))!.getReader({
      mode: 'byob',
    });
    const received: Buffer[] = [];
    let buffer = new ArrayBuffer(768 * 1024);
    for (let chunk = await reader.read(new Uint8Array(buffer)); !chunk.done; ) {
      received.push(Buffer.from(chunk.value));
      // The same memory comes back each time (transferred), filled anew.
      buffer = chunk.value.buffer;
      chunk = await reader.read(new Uint8Array(buffer));
    }
    expect(received.map((chunk) => chunk.length)).toEqual([786_432, 786_432, 524_288]);
    expect(Buffer.concat(received).equals(bytes.subarray(10, 2 * 1024 * 1024 + 10))).toBe(true);
  });

  it('ends quietly when the signal aborts while a read is under way, and closes the file', async () => {
    const bytes = randomBytes(4 * 1024 * 1024);
    await storage.commit(await storage.stage(source([bytes]).stream, bytes.length));
    const controller = new AbortController();
    const reader = (await storage.read(sha256(bytes), undefined, controller.signal))!.getReader();
    const reading = reader.read();
    controller.abort();
    expect((await reading).done).toBe(true);
    expect((await reader.read()).done).toBe(true);
    await expect.poll(() => openFiles(sha256(bytes))).toEqual([]);
  });

  it('refuses names that are not content addresses', async () => {
    await expect(storage.read('../../etc/passwd')).rejects.toThrow('Not a SHA-256');
    await expect(storage.exists('A'.repeat(64))).rejects.toThrow('Not a SHA-256');
    await expect(storage.discard({ sha256: 'a'.repeat(64), size: 0, key: '../x' })).rejects.toThrow(
      'Not a temporary',
    );
  });

  it("sweeps temporary files of processes that are gone (or of this pid's former life), keeps live ones", async () => {
    const temp = join(root, 'tmp');
    const exited = spawn(process.execPath, ['-e', '']);
    await once(exited, 'exit');
    const live = process.ppid;
    const name = (pid: number) => `${pid}-${randomBytes(12).toString('hex')}`;
    const files = {
      dead: name(exited.pid!),
      mine: name(process.pid),
      live: name(live),
      liveButStale: name(live),
      junk: 'not-a-temp-name',
    };
    for (const file of Object.values(files)) await writeFile(join(temp, file), 'partial');
    const hoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(temp, files.liveButStale), hoursAgo, hoursAgo);
    expect(await storage.sweep(new Date(Date.now() - 60 * 60 * 1000))).toBe(4);
    expect(await readdir(temp)).toEqual([files.live]);
  });

  it('lists the content objects written before a time, with their sizes, and nothing else', async () => {
    const store = async (bytes: Uint8Array) => {
      const staged = await storage.stage(source([bytes]).stream, 1000);
      await storage.commit(staged);
      return staged.sha256;
    };
    const old = await store(Buffer.from('written hours ago'));
    const young = await store(Buffer.from('just written'));
    const hoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(root, 'sha256', old.slice(0, 2), old), hoursAgo, hoursAgo);
    // Neither content addresses nor in their shard: never listed, whatever their age.
    await writeFile(join(root, 'sha256', old.slice(0, 2), 'notes.txt'), 'x');
    const misplaced = sha256(Buffer.from('elsewhere'));
    const wrongShard = misplaced.startsWith('00') ? 'ff' : '00';
    await mkdir(join(root, 'sha256', wrongShard), { recursive: true });
    await writeFile(join(root, 'sha256', wrongShard, misplaced), 'elsewhere');
    for (const name of ['notes.txt', misplaced]) {
      const path = join(root, 'sha256', name === misplaced ? wrongShard : old.slice(0, 2), name);
      await utimes(path, hoursAgo, hoursAgo);
    }
    await storage.stage(source([Buffer.from('staged only')]).stream, 1000);

    const listed = async (olderThan: Date) => {
      const found = [];
      for await (const content of storage.contents(olderThan)) found.push(content);
      return found.sort((a, b) => a.sha256.localeCompare(b.sha256));
    };
    expect(await listed(new Date(Date.now() - 60 * 60 * 1000))).toEqual([
      { sha256: old, size: 'written hours ago'.length },
    ]);
    expect(await listed(new Date(Date.now() + 1000))).toEqual(
      [
        { sha256: old, size: 'written hours ago'.length },
        { sha256: young, size: 'just written'.length },
      ].sort((a, b) => a.sha256.localeCompare(b.sha256)),
    );
  });
});

describe('upload metadata', () => {
  it.each([
    ['report.pdf', 'report.pdf'],
    ['../../etc/passwd', 'passwd'],
    ['C:\\Users\\me\\notes.txt', 'notes.txt'],
    ['a\r\nSet-Cookie: x=1', 'aSet-Cookie: x=1'],
    ['nul\u0000byte', 'nulbyte'],
    ['invoice\u202Efdp.exe', 'invoicefdp.exe'],
    ['  spaced  ', 'spaced'],
    ['..', null],
    ['/', null],
    ['', null],
    [null, null],
  ])('cleanFilename(%j) is %j', (input, expected) => {
    expect(cleanFilename(input)).toBe(expected);
  });

  it('keeps at most 255 characters of a filename', () => {
    expect(cleanFilename('é'.repeat(300))).toBe('é'.repeat(255));
  });

  it.each([
    ['image/png', 'image/png'],
    ['text/plain; charset=utf-8', 'text/plain; charset=utf-8'],
    ['text/plain;charset="utf-8"', 'text/plain;charset="utf-8"'],
    ['application/vnd.api+json', 'application/vnd.api+json'],
    ['  image/jpeg ', 'image/jpeg'],
    ['text', 'application/octet-stream'],
    ['text/html\r\nX-Injected: 1', 'application/octet-stream'],
    ['text/plain; charset="a\u0000"', 'application/octet-stream'],
    [`x/${'y'.repeat(300)}`, 'application/octet-stream'],
    [null, 'application/octet-stream'],
  ])('mediaType(%j) is %j', (input, expected) => {
    expect(mediaType(input)).toBe(expected);
  });
});
