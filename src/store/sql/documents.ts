import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { PorticoError } from '../../errors.ts';
import { limitClause, type Sql } from '../../sql.ts';
import type {
  DocumentBody,
  DocumentCursor,
  DocumentDeletion,
  DocumentPage,
  DocumentQuery,
  DocumentSelection,
  DocumentWrite,
  DocumentWritten,
  IndexRange,
  StoreCollection,
  StoredDocument,
  StoreIndex,
} from '../backend.ts';
import { encodeKey, encodeValue, prefixEnd, valueAt } from './keys.ts';
import { checkFence } from './leases.ts';

/** The longest index key, encoded: far below PostgreSQL's B-tree row limit (about 2.7 KB), the same on SQLite. */
export const MAX_INDEX_KEY_BYTES = 1024;

const conflict = (message: string, extensions: Record<string, unknown> = {}) =>
  new PorticoError('CONFLICT', message, extensions);

export const indexKey = (index: StoreIndex, data: unknown) =>
  encodeKey(index.fields.map((field) => valueAt(data, field)));

type IndexEntryRow = ReturnType<typeof entryFor>;

/** Deletes these entries, each found by its whole primary key: never a scan of the index. */
async function deleteEntries(db: Sql, entries: readonly IndexEntryRow[]) {
  for (const entry of entries) {
    await db.run(
      'delete from index_entries where collection = ? and index_name = ? and key = ? and document_id = ?',
      [entry.collection, entry.indexName, entry.key, entry.documentId],
    );
  }
}

/** A document's entry in one index. */
export function entryFor(
  collection: string,
  index: StoreIndex,
  documentId: string,
  ownerId: string | null,
  data: unknown,
) {
  const key = indexKey(index, data);
  // As in SQL, a key with a missing (null) field is not held unique: optional fields stay optional.
  const unique = index.unique && index.fields.every((field) => valueAt(data, field) !== null);
  return { collection, indexName: index.name, key, documentId, ownerId, uniqueKey: unique ? key : null };
}

/** Refuses data whose key in some index is longer than MAX_INDEX_KEY_BYTES once encoded. */
function checkKeyLengths(collection: StoreCollection, data: unknown) {
  for (const index of collection.indexes.values()) {
    const bytes = indexKey(index, data).length;
    if (bytes > MAX_INDEX_KEY_BYTES) {
      throw new PorticoError(
        'BAD_USER_INPUT',
        `The key of index "${index.name}" (${index.fields.join(', ')}) is ${bytes} bytes once encoded; at most ${MAX_INDEX_KEY_BYTES}.`,
        { index: index.name, limit: MAX_INDEX_KEY_BYTES },
      );
    }
  }
}

/**
 * Brings a document's index entries in line with its new data (in the caller's
 * transaction). Only entries whose key or owner changed are rewritten, so an update
 * that leaves the indexed fields alone writes no entry at all.
 */
async function writeEntries(
  db: Sql,
  collection: StoreCollection,
  id: string,
  ownerId: string | null,
  data: unknown,
  previous: StoredDocument | null,
) {
  const changed: IndexEntryRow[] = [];
  const replaced: IndexEntryRow[] = [];
  for (const index of collection.indexes.values()) {
    const entry = entryFor(collection.name, index, id, ownerId, data);
    const before = previous && entryFor(collection.name, index, id, previous.ownerId, previous.data);
    if (before?.key.equals(entry.key) && before.ownerId === entry.ownerId) continue;
    changed.push(entry);
    if (before) replaced.push(before);
  }
  if (changed.length === 0) return;
  const uniqueTaken = (indexName: string) => {
    const index = collection.indexes.get(indexName)!;
    return conflict(
      `Another document has the same ${index.fields.join(', ')} (unique index "${index.name}").`,
      {
        index: index.name,
      },
    );
  };
  const unique = changed.filter((entry) => entry.uniqueKey);
  for (const entry of unique) {
    const taken = await db.rows(
      'select document_id from index_entries where collection = ? and index_name = ? and unique_key = ? and document_id <> ?',
      [entry.collection, entry.indexName, entry.uniqueKey, id],
    );
    if (taken.length > 0) throw uniqueTaken(entry.indexName);
  }
  await deleteEntries(db, replaced);
  try {
    await db.run(
      `insert into index_entries (collection, index_name, key, document_id, owner_id, unique_key) values ${changed.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`,
      changed.flatMap((entry) => [
        entry.collection,
        entry.indexName,
        entry.key,
        entry.documentId,
        entry.ownerId,
        entry.uniqueKey,
      ]),
    );
  } catch (error) {
    // A concurrent writer took the value between the check above and this insert (PostgreSQL).
    if (error instanceof UniqueConstraintViolationException && unique.length === 1)
      throw uniqueTaken(unique[0]!.indexName);
    throw error;
  }
}

const SELECT_DOCUMENT =
  'select null as key, id, data, version, owner_id, created_at, updated_at from documents where collection = ? and id = ?';

export async function getDocument(db: Sql, collection: string, id: string): Promise<StoredDocument | null> {
  const [row] = await db.rows<DocumentRow>(SELECT_DOCUMENT, [collection, id]);
  return row ? fromRow(collection, row) : null;
}

/**
 * The document a write transaction is about to change, locked until it ends on PostgreSQL, so that
 * concurrent writers of one document take turns instead of failing each other's version check
 * (SQLite has one writer at a time).
 */
async function getDocumentToWrite(tx: Sql, collection: string, id: string): Promise<StoredDocument | null> {
  const lock = tx.dialect === 'postgresql' ? ' for update' : '';
  const [row] = await tx.rows<DocumentRow>(`${SELECT_DOCUMENT}${lock}`, [collection, id]);
  return row ? fromRow(collection, row) : null;
}

function checkVersion(
  id: string,
  current: StoredDocument | null,
  expectedVersion: number | null | undefined,
) {
  if (
    expectedVersion === undefined ||
    expectedVersion === null ||
    (current?.version ?? 0) === expectedVersion
  )
    return;
  throw conflict(
    current
      ? `Version ${current.version} is current, not ${expectedVersion}: reload and retry.`
      : `No document "${id}" exists (expected version ${expectedVersion}).`,
    { currentVersion: current?.version ?? 0 },
  );
}

/**
 * Creates or replaces a document atomically with its index entries. The version check is in the
 * UPDATE itself, so a concurrent writer makes it match nothing.
 */
export async function writeDocument(
  db: Sql,
  { collection, id, expectedVersion, fence, guard, body, ownerOfNew }: DocumentWrite,
): Promise<DocumentWritten> {
  const known = typeof body === 'function' ? null : body;
  if (known) checkKeyLengths(collection, known.data);
  const bodyFor = (current: StoredDocument | null): DocumentBody => {
    if (known) return known;
    const made = (body as (current: StoredDocument | null) => DocumentBody)(current);
    checkKeyLengths(collection, made.data);
    return made;
  };
  try {
    return await db.transaction(async (tx) => {
      const found = await getDocumentToWrite(tx, collection.name, id);
      const current = guard ? guard(found) : found;
      if (fence) await checkFence(tx, fence);
      checkVersion(id, current, expectedVersion);
      const { text, data } = bodyFor(current);
      const now = new Date();
      let stored: StoredDocument;
      if (current) {
        const updated = await tx.run(
          'update documents set data = ?, version = ?, updated_at = ? where collection = ? and id = ? and version = ?',
          [text, current.version + 1, now, collection.name, id, current.version],
        );
        if (updated !== 1) throw conflict('The document changed meanwhile: reload and retry.');
        stored = { ...current, data, version: current.version + 1, updatedAt: now };
      } else {
        await tx.run(
          'insert into documents (collection, id, data, version, owner_id, created_at, updated_at) values (?, ?, ?, 1, ?, ?, ?)',
          [collection.name, id, text, ownerOfNew, now, now],
        );
        stored = {
          collection: collection.name,
          id,
          data,
          version: 1,
          ownerId: ownerOfNew,
          createdAt: now,
          updatedAt: now,
        };
      }
      await writeEntries(tx, collection, id, stored.ownerId, data, current);
      return { document: stored, kind: current ? 'UPDATED' : 'CREATED' } satisfies DocumentWritten;
    });
  } catch (error) {
    // Concurrent writers collided in the database (the same new id, or one of several unique keys): one got through.
    if (error instanceof UniqueConstraintViolationException)
      throw conflict('A concurrent write conflicted: retry.');
    throw error;
  }
}

/**
 * Deletes a document and its index entries (those of the `declared` collection's indexes, by their
 * keys); null when there was none.
 */
export async function deleteDocument(
  db: Sql,
  { collection, id, expectedVersion, fence, guard }: DocumentDeletion,
  declared: StoreCollection | undefined,
): Promise<StoredDocument | null> {
  return db.transaction(async (tx) => {
    const found = await getDocumentToWrite(tx, collection, id);
    const current = guard ? guard(found) : found;
    if (fence) await checkFence(tx, fence);
    if (!current) {
      if (expectedVersion) throw conflict(`No document "${id}" exists.`, { currentVersion: 0 });
      return null;
    }
    checkVersion(id, current, expectedVersion);
    const deleted = await tx.run('delete from documents where collection = ? and id = ? and version = ?', [
      collection,
      id,
      current.version,
    ]);
    if (deleted !== 1) throw conflict('The document changed meanwhile: reload and retry.');
    if (declared) {
      const entries = [...declared.indexes.values()].map((index) =>
        entryFor(collection, index, id, current.ownerId, current.data),
      );
      await deleteEntries(tx, entries);
    } else {
      // A collection no longer declared: whatever entries it kept, found by a scan of its own.
      await tx.run('delete from index_entries where collection = ? and document_id = ?', [collection, id]);
    }
    return current;
  });
}

// ---------------------------------------------------------------- queries

interface KeyRange {
  from: Buffer | null;
  /** Exclusive. */
  to: Buffer | null;
}

/**
 * An index range as one range of encoded keys: the encodings are prefix-free, so "equal on these
 * leading fields" is every key that starts with their encoding.
 */
export function keyRange(range: IndexRange | null | undefined): KeyRange {
  const prefix = encodeKey(range?.equal ?? []);
  const prefixEndKey = prefixEnd(prefix);
  const lower = range?.lower;
  const upper = range?.upper;
  if (!lower && !upper)
    return { from: prefix.length > 0 ? prefix : null, to: prefix.length > 0 ? prefixEndKey : null };
  const bound = (value: unknown) => Buffer.concat([prefix, encodeValue(value)]);
  const from = lower
    ? lower.inclusive
      ? bound(lower.value)
      : prefixEnd(bound(lower.value))
    : prefix.length > 0
      ? prefix
      : null;
  const to = upper ? (upper.inclusive ? prefixEnd(bound(upper.value)) : bound(upper.value)) : prefixEndKey;
  return { from, to: to ?? (prefix.length > 0 ? prefixEndKey : null) };
}

/** The key a cursor's position names (the hex of an index key; empty in id order). */
const keyAt = (cursor: DocumentCursor) => (cursor.position ? Buffer.from(cursor.position, 'hex') : null);

function conditions(
  selection: DocumentSelection & { order?: 'ASC' | 'DESC'; after?: DocumentCursor | null },
) {
  const { collection, index, ownerId, after } = selection;
  const sql: string[] = [];
  const params: unknown[] = [];
  if (index) {
    sql.push('e.collection = ?', 'e.index_name = ?');
    params.push(collection, index.name);
    if (ownerId) {
      sql.push('e.owner_id = ?');
      params.push(ownerId);
    }
    const range = keyRange(selection.range);
    if (range.from) {
      sql.push('e.key >= ?');
      params.push(range.from);
    }
    if (range.to) {
      sql.push('e.key < ?');
      params.push(range.to);
    }
    if (after) {
      const op = selection.order === 'DESC' ? '<' : '>';
      const key = keyAt(after);
      sql.push(`(e.key ${op} ? or (e.key = ? and e.document_id ${op} ?))`);
      params.push(key, key, after.id);
    }
  } else {
    sql.push('d.collection = ?');
    params.push(collection);
    if (ownerId) {
      sql.push('d.owner_id = ?');
      params.push(ownerId);
    }
    if (after) {
      sql.push(`d.id ${selection.order === 'DESC' ? '<' : '>'} ?`);
      params.push(after.id);
    }
  }
  return { where: sql.join(' and '), params };
}

/** One page of a query: a key-range scan of the index (or of ids), keyset-paginated. */
export async function queryDocuments(db: Sql, query: DocumentQuery): Promise<DocumentPage> {
  const { where, params } = conditions(query);
  const direction = query.order === 'DESC' ? 'desc' : 'asc';
  // One statement: the key range (or id range) joined to the documents it names.
  const sql = query.index
    ? `select e.key, d.id, d.data, d.version, d.owner_id, d.created_at, d.updated_at
       from index_entries e join documents d on d.collection = e.collection and d.id = e.document_id
       where ${where} order by e.key ${direction}, e.document_id ${direction} ${limitClause(query.first + 1)}`
    : `select null as key, d.id, d.data, d.version, d.owner_id, d.created_at, d.updated_at
       from documents d where ${where} order by d.id ${direction} ${limitClause(query.first + 1)}`;
  const rows = await db.rows<DocumentRow>(sql, params);
  return {
    items: rows.slice(0, query.first).map((row) => ({
      document: fromRow(query.collection, row),
      position: row.key === null ? '' : hexOf(row.key),
    })),
    hasNextPage: rows.length > query.first,
  };
}

/** Both drivers give a blob as a Buffer: read it in place, without a copy. */
const hexOf = (bytes: Uint8Array) =>
  (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString(
    'hex',
  );

/** Counts a query from the index entries alone. */
export async function countDocuments(db: Sql, selection: DocumentSelection): Promise<number> {
  const { where, params } = conditions(selection);
  const table = selection.index ? 'index_entries e' : 'documents d';
  const [row] = await db.rows<{ count: number | string }>(
    `select count(*) as count from ${table} where ${where}`,
    params,
  );
  return Number(row?.count ?? 0);
}

interface DocumentRow {
  key: Uint8Array | null;
  id: string;
  data: string;
  version: number | string;
  owner_id: string | null;
  created_at: Date | number | string;
  updated_at: Date | number | string;
}

/** A raw row as a document (SQLite gives dates as epoch milliseconds, PostgreSQL as dates). */
const fromRow = (collection: string, row: DocumentRow): StoredDocument => ({
  collection,
  id: row.id,
  data: JSON.parse(row.data) as Record<string, unknown>,
  version: Number(row.version),
  ownerId: row.owner_id,
  createdAt: new Date(row.created_at),
  updatedAt: new Date(row.updated_at),
});
