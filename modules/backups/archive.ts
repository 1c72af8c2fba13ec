import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, type WriteStream } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { constants, gunzipSync, gzip } from 'node:zlib';
import tar from 'tar-stream';
import type { TableRow, TableShape } from '../../src/index.ts';
import { rowProblem } from '../../src/index.ts';

/*
 * A Portico backup (docs/backups.md): a tar file, written front to back as a stream, whose entries are
 *   portico-backup.json            the header: format version, source, the tables' shapes, expected sizes
 *   system/<table>/<n>.ndjson.gz   rows of a system table, one JSON object per line
 *   blobs/<sha256>                 the bytes of one blob content, named by their own SHA-256
 *   store/<table>/<n>.ndjson.gz    rows of a store table; a page of blob_contents follows its bytes
 *   manifest.json                  the size and SHA-256 of every entry above but the blobs, the counts
 *   manifest.sha256                the SHA-256 of manifest.json
 * so that every byte that matters is checked: blobs by their names, the rest by the manifest, the
 * manifest by the last entry. Nothing depends on the database kind: rows carry JSON values.
 */

export const FORMAT = 'portico-backup';
export const FORMAT_VERSION = 1;
const HEADER_ENTRY = 'portico-backup.json';
const MANIFEST_ENTRY = 'manifest.json';
const MANIFEST_CHECKSUM_ENTRY = 'manifest.sha256';
const ROWS_ENTRY = /^(system|store)\/([a-z][a-z0-9_]{0,62})\/(\d{6})\.ndjson\.gz$/;
const BLOB_ENTRY = /^blobs\/([0-9a-f]{64})$/;

/** Rows go into one entry until it holds this much JSON (or ROWS_PER_ENTRY rows). */
const ENTRY_TARGET_BYTES = 1024 * 1024;
const ROWS_PER_ENTRY = 10_000;
/** What a reader takes in one rows entry, compressed or not: far above what a writer makes. */
const MAX_ROWS_ENTRY_BYTES = 64 * 1024 * 1024;
const MAX_JSON_ENTRY_BYTES = 64 * 1024 * 1024;

export type ArchivePart = 'system' | 'store';

export interface ArchiveHeader {
  format: typeof FORMAT;
  version: number;
  createdAt: string;
  /** Where the data came from, for the operator. */
  source: { system: string; store: string; blobStorage: string };
  tables: Record<ArchivePart, TableShape[]>;
  /**
   * What the snapshots held when the backup began; the manifest says what the archive holds: the
   * same, but for blobs deleted while the backup ran (`blobs.leftOut`).
   */
  expected: { rows: Record<string, number>; blobs: number; blobBytes: number };
}

export interface ArchiveManifest {
  /** Every entry but the blobs (named by their SHA-256) and the manifest's own. */
  entries: { name: string; size: number; sha256: string }[];
  /** Rows per `<part>/<table>`. */
  rows: Record<string, number>;
  /**
   * `leftOut`: blob contents of the snapshot whose blobs were all deleted while the backup ran, so
   * their bytes were gone before they could be copied; their rows are left out with them.
   */
  blobs: { count: number; bytes: number; leftOut: number };
  finishedAt: string;
}

/** An archive that cannot be used, and why, for the operator. */
export class ArchiveProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveProblem';
  }
}

const sha256Hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Writes an archive to a temporary file beside `file`, renamed to `file` only once complete and on
 * disk: a backup that stops halfway (an error, kill -9, a full disk) leaves nothing under the name.
 */
export class ArchiveWriter {
  readonly #file: string;
  readonly #temp: string;
  readonly #pack = tar.pack();
  readonly #done: Promise<void>;
  readonly #mtime: Date;
  readonly #entries: ArchiveManifest['entries'] = [];
  readonly #rows: Record<string, number> = {};
  readonly #sequence = new Map<string, number>();
  readonly #blobs = { count: 0, bytes: 0, leftOut: 0 };
  readonly #out: WriteStream;
  /** Rejects with the first failure to write (a full disk, say): every wait of the writer races it. */
  readonly #failed: Promise<never>;

  private constructor(file: string, temp: string, handle: FileHandle, mtime: Date) {
    this.#file = file;
    this.#temp = temp;
    this.#mtime = mtime;
    const out = handle.createWriteStream();
    this.#out = out;
    this.#pack.pipe(out);
    this.#done = new Promise((resolve, reject) => {
      out.on('close', resolve);
      out.on('error', reject);
      this.#pack.on('error', reject);
    });
    this.#failed = this.#done.then(() => new Promise<never>(() => {}));
    // Surfaced by the waits that race them; an unhandled rejection would end the process first.
    this.#done.catch(() => {});
    this.#failed.catch(() => {});
  }

  /** Starts an archive for `file` with its header; a folder that cannot take it fails here, before any work. */
  static async create(file: string, header: ArchiveHeader): Promise<ArchiveWriter> {
    const temp = join(dirname(file), `.${basename(file)}.partial-${randomBytes(6).toString('hex')}`);
    const handle = await open(temp, 'wx', 0o600);
    const writer = new ArchiveWriter(file, temp, handle, new Date(header.createdAt));
    await writer.#entry(HEADER_ENTRY, Buffer.from(JSON.stringify(header, null, 2)), true);
    return writer;
  }

  /** Adds rows of a table, in entries of a bounded size. */
  async rows(part: ArchivePart, table: string, rows: readonly TableRow[]) {
    const key = `${part}/${table}`;
    this.#rows[key] ??= 0;
    let lines: string[] = [];
    let bytes = 0;
    const flush = async () => {
      if (lines.length === 0) return;
      const sequence = (this.#sequence.get(key) ?? 0) + 1;
      this.#sequence.set(key, sequence);
      const compressed = await promisify(gzip)(`${lines.join('\n')}\n`, { level: constants.Z_BEST_SPEED });
      await this.#entry(`${key}/${String(sequence).padStart(6, '0')}.ndjson.gz`, compressed, true);
      this.#rows[key]! += lines.length;
      lines = [];
      bytes = 0;
    };
    for (const row of rows) {
      const line = JSON.stringify(row);
      lines.push(line);
      bytes += line.length;
      if (bytes >= ENTRY_TARGET_BYTES || lines.length >= ROWS_PER_ENTRY) await flush();
    }
    await flush();
  }

  /** Adds the bytes of one blob content, checking them against their address as they pass. */
  async blob(sha256: string, size: number, bytes: AsyncIterable<Uint8Array>) {
    const hash = createHash('sha256');
    let seen = 0;
    const written = new Promise<void>((resolve, reject) => {
      const entry = this.#pack.entry(
        { name: `blobs/${sha256}`, size, mtime: this.#mtime, mode: 0o644 },
        (error?: Error | null) => (error ? reject(error) : resolve()),
      );
      (async () => {
        for await (const chunk of bytes) {
          hash.update(chunk);
          seen += chunk.byteLength;
          if (seen > size) throw new Error(`the blob content ${sha256} holds more than its ${size} bytes`);
          if (!entry.write(chunk)) await once(entry, 'drain');
        }
        if (seen !== size) throw new Error(`the blob content ${sha256} holds ${seen} bytes, not ${size}`);
        if (hash.digest('hex') !== sha256) {
          throw new Error(
            `the stored bytes of ${sha256} do not match their SHA-256: the blob storage is damaged`,
          );
        }
        entry.end(undefined);
      })().catch((error: unknown) => {
        entry.destroy(error as Error);
        reject(error);
      });
    });
    await Promise.race([written, this.#failed]);
    this.#blobs.count++;
    this.#blobs.bytes += size;
  }

  /** Counts a blob content of the snapshot that was deleted before its bytes could be copied. */
  leaveOut() {
    this.#blobs.leftOut++;
  }

  /** Writes the manifest, then makes the archive durable under its name. Returns its size in bytes. */
  async finish(): Promise<number> {
    const manifest: ArchiveManifest = {
      entries: this.#entries,
      rows: this.#rows,
      blobs: this.#blobs,
      finishedAt: new Date().toISOString(),
    };
    const text = Buffer.from(JSON.stringify(manifest, null, 2));
    await this.#entry(MANIFEST_ENTRY, text, false);
    await this.#entry(MANIFEST_CHECKSUM_ENTRY, Buffer.from(`${sha256Hex(text)}\n`), false);
    this.#pack.finalize();
    await this.#done;
    const handle = await open(this.#temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(this.#temp, this.#file);
    const folder = await open(dirname(this.#file), 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
    return this.#out.bytesWritten;
  }

  /** Drops the unfinished archive. */
  async abandon() {
    this.#pack.destroy();
    await this.#done.catch(() => {});
    await rm(this.#temp, { force: true });
  }

  async #entry(name: string, bytes: Buffer, listed: boolean) {
    const written = new Promise<void>((resolve, reject) => {
      this.#pack.entry({ name, mtime: this.#mtime, mode: 0o644 }, bytes, (error?: Error | null) =>
        error ? reject(error) : resolve(),
      );
    });
    await Promise.race([written, this.#failed]);
    if (listed) this.#entries.push({ name, size: bytes.length, sha256: sha256Hex(bytes) });
  }
}

/** What a reader does with an archive's contents as they pass; the reader checks them first. */
export interface ArchiveVisitor {
  header?(header: ArchiveHeader): Promise<void> | void;
  rows?(part: ArchivePart, shape: TableShape, rows: TableRow[]): Promise<void> | void;
  /**
   * Must read `bytes` to the end and check them against `sha256` (a blob storage's `stage` hashes
   * them anyway): the reader does not hash them twice. Without it the reader checks them itself.
   */
  blob?(sha256: string, size: number, bytes: ReadableStream<Uint8Array>): Promise<void>;
  /** Bytes of the archive read so far. */
  progress?(bytesRead: number): void;
}

export interface ArchiveSummary {
  header: ArchiveHeader;
  manifest: ArchiveManifest;
  bytes: number;
}

/**
 * Reads an archive front to back with bounded memory, checking everything (see the top of this
 * file) and handing what it read to `visit`; throws ArchiveProblem, saying what is wrong, for a
 * damaged, truncated or foreign file. A visitor learns that the whole archive is sound only when
 * this resolves: a restore reads it twice, checking first.
 */
export async function readArchive(file: string, visit: ArchiveVisitor = {}): Promise<ArchiveSummary> {
  const problem = (message: string) => new ArchiveProblem(`${file}: ${message}`);
  let source: ReturnType<typeof createReadStream>;
  try {
    source = createReadStream(file);
    await once(source, 'open');
  } catch (error) {
    throw problem(`cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  let bytesRead = 0;
  source.on('data', (chunk) => {
    bytesRead += chunk.length;
    visit.progress?.(bytesRead);
  });
  const extract = tar.extract();
  source.pipe(extract);
  source.on('error', (error) => extract.destroy(error));

  let header: ArchiveHeader | undefined;
  let manifest: ArchiveManifest | undefined;
  let manifestText: Buffer | undefined;
  let checksumSeen = false;
  const listed = new Map<string, { size: number; sha256: string }>();
  const rows: Record<string, number> = {};
  const blobs = { count: 0, bytes: 0 };
  const blobsSeen = new Set<string>();
  const contents = new Map<string, number>();
  const blobRowsMissingContent = new Set<string>();
  let last = 'its start';

  try {
    for await (const entry of extract) {
      const name = entry.header.name;
      const size = entry.header.size ?? 0;
      if (entry.header.type !== 'file') throw problem(`"${name}" is not a file entry`);
      if (checksumSeen) throw problem(`"${name}" follows the manifest's checksum`);
      if (!header && name !== HEADER_ENTRY)
        throw problem(`it does not start with ${HEADER_ENTRY}: not a Portico backup`);
      const blob = BLOB_ENTRY.exec(name);
      if (blob) {
        if (manifest) throw problem(`blob ${blob[1]} follows the manifest`);
        const sha256 = blob[1]!;
        if (blobsSeen.has(sha256)) throw problem(`blob ${sha256} appears twice`);
        const bytes = entry as AsyncIterable<unknown> as AsyncIterable<Uint8Array>;
        if (visit.blob) await visit.blob(sha256, size, webStream(bytes));
        else await drain(checkedBytes(bytes, sha256, size, problem));
        blobsSeen.add(sha256);
        blobs.count++;
        blobs.bytes += size;
        last = name;
        continue;
      }
      const limit = ROWS_ENTRY.test(name) ? MAX_ROWS_ENTRY_BYTES : MAX_JSON_ENTRY_BYTES;
      if (size > limit) throw problem(`"${name}" is larger than any backup makes it`);
      const bytes = await readAll(entry as AsyncIterable<unknown> as AsyncIterable<Uint8Array>);
      const sha256 = sha256Hex(bytes);
      if (name === HEADER_ENTRY) {
        if (header) throw problem(`${HEADER_ENTRY} appears twice`);
        header = parseHeader(bytes, problem);
        await visit.header?.(header);
      } else if (name === MANIFEST_ENTRY) {
        if (manifest) throw problem(`${MANIFEST_ENTRY} appears twice`);
        manifestText = bytes;
        manifest = parseJson(bytes, MANIFEST_ENTRY, problem) as ArchiveManifest;
      } else if (name === MANIFEST_CHECKSUM_ENTRY) {
        if (!manifestText) throw problem(`${MANIFEST_CHECKSUM_ENTRY} comes before the manifest`);
        if (bytes.toString('utf8').trim() !== sha256Hex(manifestText)) {
          throw problem('the manifest does not match its checksum: the file is damaged');
        }
        checksumSeen = true;
      } else {
        const match = ROWS_ENTRY.exec(name);
        if (!match || manifest) throw problem(`"${name}" has no place in a Portico backup`);
        const part = match[1] as ArchivePart;
        const table = match[2]!;
        const shape = header!.tables[part].find((candidate) => candidate.table === table);
        if (!shape) throw problem(`"${name}" holds rows of a table the header does not list`);
        const parsed = parseRows(bytes, name, shape, problem);
        if (part === 'store' && table === 'blob_contents') {
          for (const row of parsed) {
            const address = row.sha256 as string;
            if (!blobsSeen.has(address)) throw problem(`the bytes of blob content ${address} are missing`);
            contents.set(address, row.size as number);
          }
        }
        if (part === 'store' && table === 'blobs') {
          for (const row of parsed) blobRowsMissingContent.add(row.sha256 as string);
          for (const address of blobRowsMissingContent) {
            if (contents.has(address)) blobRowsMissingContent.delete(address);
          }
        }
        rows[`${part}/${table}`] = (rows[`${part}/${table}`] ?? 0) + parsed.length;
        await visit.rows?.(part, shape, parsed);
      }
      if (name !== MANIFEST_ENTRY && name !== MANIFEST_CHECKSUM_ENTRY) listed.set(name, { size, sha256 });
      last = name;
    }
  } catch (error) {
    if (error instanceof ArchiveProblem) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw problem(`it cannot be read past ${last} (${reason}): the file is truncated or damaged`);
  } finally {
    source.destroy();
  }

  if (!header) throw problem('it is empty');
  if (!manifest || !checksumSeen) {
    throw problem(
      `it ends after ${last}, before its manifest: the backup did not finish, or the file was truncated`,
    );
  }
  checkManifest(manifest, { listed, rows, blobs }, problem);
  // Blobs deleted while the backup ran are left out, with their content and blob rows.
  const expected = header.expected;
  const leftOut = manifest.blobs.leftOut;
  if (!Number.isSafeInteger(leftOut) || leftOut < 0 || expected.blobs !== blobs.count + leftOut) {
    throw problem(`it holds ${blobs.count} blob contents, its header promised ${expected.blobs}`);
  }
  for (const [key, count] of Object.entries(expected.rows)) {
    const held = rows[key] ?? 0;
    const fits =
      key === 'store/blob_contents'
        ? held === count - leftOut
        : key === 'store/blobs'
          ? held <= count && (leftOut > 0 || held === count)
          : held === count;
    if (!fits) throw problem(`${key} holds ${held} rows, its header promised ${count}`);
  }
  if (contents.size !== blobsSeen.size) throw problem('it holds blob bytes that no blob content row names');
  for (const [address, size] of contents) {
    if (size < 0) throw problem(`blob content ${address} has a negative size`);
  }
  if (blobRowsMissingContent.size > 0) {
    throw problem(`blob rows name contents it does not hold, e.g. ${[...blobRowsMissingContent][0]}`);
  }
  return { header, manifest, bytes: bytesRead };
}

function checkManifest(
  manifest: ArchiveManifest,
  read: {
    listed: Map<string, { size: number; sha256: string }>;
    rows: Record<string, number>;
    blobs: { count: number; bytes: number };
  },
  problem: (message: string) => ArchiveProblem,
) {
  if (!Array.isArray(manifest.entries) || manifest.entries.length !== read.listed.size) {
    throw problem('the manifest lists other entries than the archive holds');
  }
  for (const entry of manifest.entries) {
    const seen = read.listed.get(entry.name);
    if (!seen) throw problem(`the manifest lists "${entry.name}", which the archive lacks`);
    if (seen.size !== entry.size || seen.sha256 !== entry.sha256) {
      throw problem(`"${entry.name}" does not match its checksum in the manifest: the file is damaged`);
    }
  }
  for (const [key, count] of Object.entries(read.rows)) {
    if (manifest.rows?.[key] !== count)
      throw problem(`${key} holds ${count} rows, the manifest says ${manifest.rows?.[key]}`);
  }
  if (manifest.blobs?.count !== read.blobs.count || manifest.blobs.bytes !== read.blobs.bytes) {
    throw problem('the blob contents do not match the manifest');
  }
}

function parseHeader(bytes: Buffer, problem: (message: string) => ArchiveProblem): ArchiveHeader {
  const header = parseJson(bytes, HEADER_ENTRY, problem) as ArchiveHeader;
  if (header?.format !== FORMAT) throw problem('not a Portico backup');
  if (header.version !== FORMAT_VERSION) {
    throw problem(
      `format version ${header.version}; this Portico reads version ${FORMAT_VERSION} (a newer Portico made it?)`,
    );
  }
  const shapesOk = (['system', 'store'] as const).every(
    (part) =>
      Array.isArray(header.tables?.[part]) &&
      header.tables[part].every(
        (shape) =>
          typeof shape?.table === 'string' &&
          Array.isArray(shape.columns) &&
          Array.isArray(shape.primaryKey) &&
          shape.columns.every(
            (column) => typeof column?.property === 'string' && typeof column.kind === 'string',
          ),
      ),
  );
  if (!shapesOk || typeof header.expected?.rows !== 'object') throw problem(`${HEADER_ENTRY} is malformed`);
  return header;
}

function parseJson(bytes: Buffer, name: string, problem: (message: string) => ArchiveProblem): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw problem(`${name} is not valid JSON: the file is damaged`);
  }
}

function parseRows(
  compressed: Buffer,
  name: string,
  shape: TableShape,
  problem: (message: string) => ArchiveProblem,
): TableRow[] {
  let text: string;
  try {
    // Bounded: a small entry must not inflate into gigabytes.
    text = gunzipSync(compressed, { maxOutputLength: MAX_ROWS_ENTRY_BYTES }).toString('utf8');
  } catch {
    throw problem(`"${name}" cannot be decompressed: the file is damaged`);
  }
  const lines = text.split('\n');
  if (lines.pop() !== '') throw problem(`"${name}" does not end with a newline: the file is damaged`);
  return lines.map((line, i) => {
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw problem(`"${name}" line ${i + 1} is not JSON: the file is damaged`);
    }
    const wrong = rowProblem(shape, row);
    if (wrong) throw problem(`"${name}" line ${i + 1}: ${wrong}`);
    return row as TableRow;
  });
}

async function readAll(entry: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function drain(bytes: AsyncIterable<Uint8Array>) {
  for await (const _ of bytes);
}

const webStream = (bytes: AsyncIterable<Uint8Array>) =>
  Readable.toWeb(Readable.from(bytes)) as ReadableStream<Uint8Array>;

/** The entry's bytes, failing at their end unless they are `size` bytes hashing to `sha256`. */
async function* checkedBytes(
  entry: AsyncIterable<Uint8Array>,
  sha256: string,
  size: number,
  problem: (message: string) => ArchiveProblem,
) {
  const hash = createHash('sha256');
  let seen = 0;
  for await (const chunk of entry) {
    hash.update(chunk);
    seen += chunk.byteLength;
    yield chunk;
  }
  if (seen !== size || hash.digest('hex') !== sha256) {
    throw problem(`the bytes of blob ${sha256} do not match their SHA-256: the file is damaged`);
  }
}
