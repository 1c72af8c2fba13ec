import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import { newId, PorticoError, runStatement, selectRows } from '../../src/index.ts';
import leases, { type Fence } from '../leases/index.ts';
import { ajv, type CollectionDefinition, type IndexDefinition } from './config.ts';
import { type JsonObject, toJson, toJsonObject } from './json.ts';
import { encodeKey, encodeValue, prefixEnd, valueAt } from './keys.ts';
import { mergePatch } from './patch.ts';

/** The largest document, as serialized JSON. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;
/** The longest index key, encoded: far below PostgreSQL's B-tree row limit (about 2.7 KB), the same on SQLite. */
export const MAX_INDEX_KEY_BYTES = 1024;
// Printable: no control characters (U+0000–U+001F).
const isPrintableId = (id: string) =>
  id.length >= 1 && id.length <= 128 && ![...id].some((char) => char < ' ');

export interface StoredDocument {
  collection: string;
  id: string;
  data: Record<string, unknown>;
  version: number;
  ownerId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

const conflict = (message: string, extensions: Record<string, unknown> = {}) =>
  new PorticoError('CONFLICT', message, extensions);

export const documentNotFound = (collection: string, id: string) =>
  new PorticoError('NOT_FOUND', `No document "${id}" in "${collection}".`);

function checkId(id: string) {
  if (!isPrintableId(id))
    throw new PorticoError('BAD_USER_INPUT', 'A document id has 1 to 128 printable characters.');
}

/**
 * Size limit, the collection's JSON Schema and index key lengths, all on the value that is stored
 * (JSON from `toJson`); returns its JSON text.
 */
function validate(definition: CollectionDefinition, data: JsonObject): string {
  const text = JSON.stringify(data);
  if (Buffer.byteLength(text) > MAX_DOCUMENT_BYTES) {
    throw new PorticoError(
      'PAYLOAD_TOO_LARGE',
      `A document is at most ${MAX_DOCUMENT_BYTES} bytes of JSON.`,
      {
        limit: MAX_DOCUMENT_BYTES,
      },
    );
  }
  if (definition.schema) {
    const check = ajv.compile(definition.schema);
    if (!check(data)) {
      const errors = (check.errors ?? []).map((error) => ({
        path: error.instancePath || '/',
        message: error.message ?? 'is invalid',
      }));
      throw new PorticoError(
        'VALIDATION_FAILED',
        `The document does not match the schema of "${definition.name}": ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}.`,
        { errors },
      );
    }
  }
  for (const index of definition.indexes.values()) {
    const bytes = indexKey(index, data).length;
    if (bytes > MAX_INDEX_KEY_BYTES) {
      throw new PorticoError(
        'BAD_USER_INPUT',
        `The key of index "${index.name}" (${index.fields.join(', ')}) is ${bytes} bytes once encoded; at most ${MAX_INDEX_KEY_BYTES}.`,
        { index: index.name, limit: MAX_INDEX_KEY_BYTES },
      );
    }
  }
  return text;
}

export const indexKey = (index: IndexDefinition, data: unknown) =>
  encodeKey(index.fields.map((field) => valueAt(data, field)));

/** A document's entry in one index. */
export function entryFor(
  collection: string,
  index: IndexDefinition,
  documentId: string,
  ownerId: string | null,
  data: unknown,
) {
  const key = indexKey(index, data);
  // As in SQL, a key with a missing (null) field is not held unique: optional fields stay optional.
  const unique = index.unique && index.fields.every((field) => valueAt(data, field) !== null);
  return { collection, indexName: index.name, key, documentId, ownerId, uniqueKey: unique ? key : null };
}

type Db = SqlEntityManager;

const dbDate = (em: Db, date: Date) => em.getPlatform().processDateProperty(date);

/**
 * Brings a document's index entries in line with its new data (in the caller's
 * transaction). Only entries whose key or owner changed are rewritten, so an update
 * that leaves the indexed fields alone writes no entry at all.
 */
async function writeEntries(
  em: Db,
  definition: CollectionDefinition,
  id: string,
  ownerId: string | null,
  data: unknown,
  previous: StoredDocument | null,
) {
  const entries = [...definition.indexes.values()].map((index) =>
    entryFor(definition.name, index, id, ownerId, data),
  );
  const changed = previous
    ? entries.filter((entry) => {
        const index = definition.indexes.get(entry.indexName)!;
        const before = entryFor(definition.name, index, id, previous.ownerId, previous.data);
        return !before.key.equals(entry.key) || before.ownerId !== entry.ownerId;
      })
    : entries;
  if (changed.length === 0) return;
  const uniqueTaken = (indexName: string) => {
    const index = definition.indexes.get(indexName)!;
    return conflict(
      `Another document has the same ${index.fields.join(', ')} (unique index "${index.name}").`,
      {
        index: index.name,
      },
    );
  };
  const unique = changed.filter((entry) => entry.uniqueKey);
  for (const entry of unique) {
    const taken = await selectRows(
      em,
      'select document_id from index_entries where collection = ? and index_name = ? and unique_key = ? and document_id <> ?',
      [entry.collection, entry.indexName, entry.uniqueKey, id],
    );
    if (taken.length > 0) throw uniqueTaken(entry.indexName);
  }
  if (previous) {
    await runStatement(
      em,
      `delete from index_entries where collection = ? and document_id = ? and index_name in (${changed.map(() => '?').join(', ')})`,
      [definition.name, id, ...changed.map((entry) => entry.indexName)],
    );
  }
  try {
    await runStatement(
      em,
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

export async function getDocument(em: Db, collection: string, id: string): Promise<StoredDocument | null> {
  const [row] = await selectRows<DocumentRow>(em, SELECT_DOCUMENT, [collection, id]);
  return row ? fromRow(collection, row) : null;
}

export interface WriteResult {
  document: StoredDocument;
  kind: 'CREATED' | 'UPDATED';
}

/**
 * Checks the caller may change the document as it is now (null: it does not exist yet), throwing
 * otherwise; returns the document as the caller may know it: null for one that must answer as if
 * it were missing (another user's, in `owner` mode).
 */
export type WriteGuard = (current: StoredDocument | null) => StoredDocument | null;

/**
 * Creates (no id, or a new one) or replaces a document, atomically with its index
 * entries. `expectedVersion` makes it conditional (0: must not exist yet).
 */
export async function putDocument(
  em: Db,
  definition: CollectionDefinition,
  input: { id?: string | null; data: Record<string, unknown>; ownerId: string | null } & WriteConditions,
  guard?: WriteGuard,
): Promise<WriteResult> {
  const id = input.id ?? newId();
  checkId(id);
  const data = toJsonObject(input.data, 'Document data');
  const text = validate(definition, data);
  return write(em, definition, id, input, guard, () => ({ text, data }), input.ownerId);
}

/** Applies a JSON Merge Patch to an existing document. */
export async function patchDocument(
  em: Db,
  definition: CollectionDefinition,
  input: { id: string; patch: Record<string, unknown> } & WriteConditions,
  guard?: WriteGuard,
): Promise<WriteResult> {
  checkId(input.id);
  const patch = toJsonObject(input.patch, 'The patch');
  return write(em, definition, input.id, input, guard, (current) => {
    if (!current) throw documentNotFound(definition.name, input.id);
    const data = mergePatch(toJsonObject(current.data, 'The document'), patch) as JsonObject;
    return { text: validate(definition, data), data };
  });
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

/** What makes a write conditional: the document's version, and holding a lease. */
export interface WriteConditions {
  /** 0: the document must not exist yet. */
  expectedVersion?: number | null;
  /** Refused (FENCE_REJECTED) unless its token is the lease's latest. */
  fence?: Fence | null;
}

async function write(
  em: Db,
  definition: CollectionDefinition,
  id: string,
  { expectedVersion, fence }: WriteConditions,
  guard: WriteGuard | undefined,
  next: (current: StoredDocument | null) => { text: string; data: JsonObject },
  ownerOfNew: string | null = null,
): Promise<WriteResult> {
  try {
    return await em.transactional(async (tx) => {
      const found = await getDocument(tx, definition.name, id);
      const current = guard ? guard(found) : found;
      if (fence) await leases.api.checkFence(tx, fence);
      checkVersion(id, current, expectedVersion);
      const { text, data } = next(current);
      const now = new Date();
      let stored: StoredDocument;
      if (current) {
        // The version check is in the UPDATE itself: a concurrent writer makes it match nothing.
        const updated = await runStatement(
          tx,
          'update documents set data = ?, version = ?, updated_at = ? where collection = ? and id = ? and version = ?',
          [text, current.version + 1, dbDate(tx, now), definition.name, id, current.version],
        );
        if (updated !== 1) throw conflict('The document changed meanwhile: reload and retry.');
        stored = { ...current, data, version: current.version + 1, updatedAt: now };
      } else {
        await runStatement(
          tx,
          'insert into documents (collection, id, data, version, owner_id, created_at, updated_at) values (?, ?, ?, 1, ?, ?, ?)',
          [definition.name, id, text, ownerOfNew, dbDate(tx, now), dbDate(tx, now)],
        );
        stored = {
          collection: definition.name,
          id,
          data,
          version: 1,
          ownerId: ownerOfNew,
          createdAt: now,
          updatedAt: now,
        };
      }
      await writeEntries(tx, definition, id, stored.ownerId, data, current);
      return { document: stored, kind: current ? 'UPDATED' : 'CREATED' } satisfies WriteResult;
    });
  } catch (error) {
    // Concurrent writers collided in the database (the same new id, or one of several unique keys): one got through.
    if (error instanceof UniqueConstraintViolationException)
      throw conflict('A concurrent write conflicted: retry.');
    throw error;
  }
}

/** Deletes a document and its index entries; null when there was none. */
export async function deleteDocument(
  em: Db,
  definition: CollectionDefinition,
  input: { id: string } & WriteConditions,
  guard?: WriteGuard,
): Promise<StoredDocument | null> {
  return em.transactional(async (tx) => {
    const found = await getDocument(tx, definition.name, input.id);
    const current = guard ? guard(found) : found;
    if (input.fence) await leases.api.checkFence(tx, input.fence);
    if (!current) {
      if (input.expectedVersion) throw conflict(`No document "${input.id}" exists.`, { currentVersion: 0 });
      return null;
    }
    checkVersion(input.id, current, input.expectedVersion);
    const deleted = await runStatement(
      tx,
      'delete from documents where collection = ? and id = ? and version = ?',
      [definition.name, input.id, current.version],
    );
    if (deleted !== 1) throw conflict('The document changed meanwhile: reload and retry.');
    await runStatement(tx, 'delete from index_entries where collection = ? and document_id = ?', [
      definition.name,
      input.id,
    ]);
    return current;
  });
}

// ---------------------------------------------------------------- queries

export interface IndexQuery {
  eq?: Record<string, unknown> | null;
  gt?: unknown;
  gte?: unknown;
  lt?: unknown;
  lte?: unknown;
}

interface KeyRange {
  from: Buffer | null;
  /** Exclusive. */
  to: Buffer | null;
}

/** A query's values as JSON (see `toJson`): refused when nested too deep, before anything encodes them. */
function queryValues(query: IndexQuery): IndexQuery {
  const values: IndexQuery = {};
  if (query.eq !== undefined && query.eq !== null) values.eq = toJsonObject(query.eq, 'where.eq');
  for (const bound of ['gt', 'gte', 'lt', 'lte'] as const) {
    if (query[bound] !== undefined) values[bound] = toJson(query[bound], `where.${bound}`);
  }
  return values;
}

/**
 * Turns `where` into one key range of the index: equality on a prefix of its
 * fields, then at most one range (a lower and/or an upper bound) on the next field.
 */
export function keyRange(index: IndexDefinition, query: IndexQuery | null | undefined): KeyRange {
  const where = query && queryValues(query);
  const eq = where?.eq ?? {};
  const eqFields = Object.keys(eq);
  const prefixFields = index.fields.slice(0, eqFields.length);
  if (eqFields.some((field) => !prefixFields.includes(field))) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      `Equality must cover a prefix of the fields of index "${index.name}" (${index.fields.join(', ')}), in any order; got ${eqFields.join(', ')}.`,
    );
  }
  const prefix = encodeKey(prefixFields.map((field) => eq[field]));
  const lower = where?.gt !== undefined ? 'gt' : where?.gte !== undefined ? 'gte' : null;
  const upper = where?.lt !== undefined ? 'lt' : where?.lte !== undefined ? 'lte' : null;
  if (
    (where?.gt !== undefined && where?.gte !== undefined) ||
    (where?.lt !== undefined && where?.lte !== undefined)
  ) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      'Give at most one lower bound (gt or gte) and one upper bound (lt or lte).',
    );
  }
  const prefixEndKey = prefixEnd(prefix);
  if (!lower && !upper)
    return { from: prefix.length > 0 ? prefix : null, to: prefix.length > 0 ? prefixEndKey : null };
  const rangeField = index.fields[prefixFields.length];
  if (!rangeField) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      `The equality covers every field of index "${index.name}"; there is no field left for a range.`,
    );
  }
  const bound = (value: unknown) => Buffer.concat([prefix, encodeValue(value)]);
  const from =
    lower === 'gt'
      ? prefixEnd(bound(where!.gt))
      : lower === 'gte'
        ? bound(where!.gte)
        : prefix.length > 0
          ? prefix
          : null;
  const to =
    upper === 'lt' ? bound(where!.lt) : upper === 'lte' ? prefixEnd(bound(where!.lte)) : prefixEndKey;
  return { from, to: to ?? (prefix.length > 0 ? prefixEndKey : null) };
}

export interface QueryInput {
  index: IndexDefinition | null;
  where?: IndexQuery | null;
  order: 'ASC' | 'DESC';
  first: number;
  /** (key hex, document id) of the last item seen, or the id for id order. */
  after?: { key: Buffer | null; id: string } | null;
  /** Only this owner's documents (owner-mode readers). */
  ownerId?: string | null;
}

export interface QueryPage {
  items: { document: StoredDocument; key: Buffer | null }[];
  hasNextPage: boolean;
}

function conditions(
  collection: string,
  input: Omit<QueryInput, 'first' | 'order'> & { order?: 'ASC' | 'DESC' },
) {
  const sql: string[] = [];
  const params: unknown[] = [];
  if (input.index) {
    sql.push('e.collection = ?', 'e.index_name = ?');
    params.push(collection, input.index.name);
    if (input.ownerId) {
      sql.push('e.owner_id = ?');
      params.push(input.ownerId);
    }
    const range = keyRange(input.index, input.where);
    if (range.from) {
      sql.push('e.key >= ?');
      params.push(range.from);
    }
    if (range.to) {
      sql.push('e.key < ?');
      params.push(range.to);
    }
    if (input.after) {
      const op = input.order === 'DESC' ? '<' : '>';
      sql.push(`(e.key ${op} ? or (e.key = ? and e.document_id ${op} ?))`);
      params.push(input.after.key, input.after.key, input.after.id);
    }
  } else {
    sql.push('d.collection = ?');
    params.push(collection);
    if (input.ownerId) {
      sql.push('d.owner_id = ?');
      params.push(input.ownerId);
    }
    if (input.after) {
      sql.push(`d.id ${input.order === 'DESC' ? '<' : '>'} ?`);
      params.push(input.after.id);
    }
  }
  return { where: sql.join(' and '), params };
}

/** One page of a query: a key-range scan of the index (or of ids), keyset-paginated. */
export async function queryDocuments(
  em: SqlEntityManager,
  collection: string,
  input: QueryInput,
): Promise<QueryPage> {
  if (!input.index && input.where && Object.keys(input.where).length > 0) {
    throw new PorticoError('BAD_USER_INPUT', '`where` needs an `index`.');
  }
  const { where, params } = conditions(collection, input);
  const direction = input.order === 'DESC' ? 'desc' : 'asc';
  // One statement: the key range (or id range) joined to the documents it names.
  const sql = input.index
    ? `select e.key, d.id, d.data, d.version, d.owner_id, d.created_at, d.updated_at
       from index_entries e join documents d on d.collection = e.collection and d.id = e.document_id
       where ${where} order by e.key ${direction}, e.document_id ${direction} limit ?`
    : `select null as key, d.id, d.data, d.version, d.owner_id, d.created_at, d.updated_at
       from documents d where ${where} order by d.id ${direction} limit ?`;
  const rows = await selectRows<DocumentRow>(em, sql, [...params, input.first + 1]);
  return {
    items: rows.slice(0, input.first).map((row) => ({
      document: fromRow(collection, row),
      key: row.key === null ? null : Buffer.from(row.key),
    })),
    hasNextPage: rows.length > input.first,
  };
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

/** Counts a query from the index entries alone. */
export async function countDocuments(
  em: SqlEntityManager,
  collection: string,
  input: Pick<QueryInput, 'index' | 'where' | 'ownerId'>,
): Promise<number> {
  if (!input.index && input.where && Object.keys(input.where).length > 0) {
    throw new PorticoError('BAD_USER_INPUT', '`where` needs an `index`.');
  }
  const { where, params } = conditions(collection, input);
  const table = input.index ? 'index_entries e' : 'documents d';
  const [row] = await selectRows<{ count: number | string }>(
    em,
    `select count(*) as count from ${table} where ${where}`,
    params,
  );
  return Number(row?.count ?? 0);
}
