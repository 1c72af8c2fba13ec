import type { EntityManager } from '@mikro-orm/core';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import { newId, PorticoError } from '../../src/index.ts';
import { ajv, type CollectionDefinition, type IndexDefinition } from './config.ts';
import { Document, IndexEntry } from './entities.ts';
import { encodeKey, encodeValue, prefixEnd, valueAt } from './keys.ts';
import { mergePatch } from './patch.ts';

/** The largest document, as serialized JSON. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;
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

const toStored = (row: Document): StoredDocument => ({
  collection: row.collection,
  id: row.id,
  data: JSON.parse(row.data) as Record<string, unknown>,
  version: row.version,
  ownerId: row.ownerId ?? null,
  createdAt: row.createdAt,
  updatedAt: row.updatedAt,
});

const conflict = (message: string, extensions: Record<string, unknown> = {}) =>
  new PorticoError('CONFLICT', message, extensions);

function checkId(id: string) {
  if (!isPrintableId(id))
    throw new PorticoError('BAD_USER_INPUT', 'A document id has 1 to 128 printable characters.');
}

/** Size limit and the collection's JSON Schema; returns the JSON text to store. */
function validate(definition: CollectionDefinition, data: Record<string, unknown>): string {
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

/** Replaces a document's index entries (in the caller's transaction). */
async function writeEntries(
  em: EntityManager,
  definition: CollectionDefinition,
  id: string,
  ownerId: string | null,
  data: unknown,
) {
  await em.nativeDelete(IndexEntry, { collection: definition.name, documentId: id });
  for (const index of definition.indexes.values()) {
    const entry = entryFor(definition.name, index, id, ownerId, data);
    if (entry.uniqueKey) {
      const taken = await em.findOne(IndexEntry, {
        collection: definition.name,
        indexName: index.name,
        uniqueKey: entry.uniqueKey,
        documentId: { $ne: id },
      });
      if (taken) {
        throw conflict(
          `Another document has the same ${index.fields.join(', ')} (unique index "${index.name}").`,
          {
            index: index.name,
          },
        );
      }
    }
    await em.insert(IndexEntry, entry);
  }
}

export async function getDocument(
  em: EntityManager,
  collection: string,
  id: string,
): Promise<StoredDocument | null> {
  const row = await em.findOne(Document, { collection, id });
  return row ? toStored(row) : null;
}

export interface WriteResult {
  document: StoredDocument;
  kind: 'CREATED' | 'UPDATED';
}

/**
 * Creates (no id, or a new one) or replaces a document, atomically with its index
 * entries. `expectedVersion` makes it conditional (0: must not exist yet).
 */
export async function putDocument(
  em: EntityManager,
  definition: CollectionDefinition,
  input: {
    id?: string | null;
    data: Record<string, unknown>;
    ownerId: string | null;
    expectedVersion?: number | null;
  },
): Promise<WriteResult> {
  const id = input.id ?? newId();
  checkId(id);
  const text = validate(definition, input.data);
  return write(em, definition, id, input.expectedVersion, () => ({ text, data: input.data }), input.ownerId);
}

/** Applies a JSON Merge Patch to an existing document. */
export async function patchDocument(
  em: EntityManager,
  definition: CollectionDefinition,
  input: { id: string; patch: Record<string, unknown>; expectedVersion?: number | null },
): Promise<WriteResult> {
  checkId(input.id);
  return write(em, definition, input.id, input.expectedVersion, (current) => {
    if (!current) throw new PorticoError('NOT_FOUND', `No document "${input.id}" in "${definition.name}".`);
    const data = mergePatch(current.data, input.patch) as Record<string, unknown>;
    return { text: validate(definition, data), data };
  });
}

async function write(
  em: EntityManager,
  definition: CollectionDefinition,
  id: string,
  expectedVersion: number | null | undefined,
  next: (current: StoredDocument | null) => { text: string; data: Record<string, unknown> },
  ownerOfNew: string | null = null,
): Promise<WriteResult> {
  try {
    return await em.transactional(async (tx) => {
      const row = await tx.findOne(Document, { collection: definition.name, id });
      const current = row ? toStored(row) : null;
      if (
        expectedVersion !== undefined &&
        expectedVersion !== null &&
        (current?.version ?? 0) !== expectedVersion
      ) {
        throw conflict(
          current
            ? `Version ${current.version} is current, not ${expectedVersion}: reload and retry.`
            : `No document "${id}" exists (expected version ${expectedVersion}).`,
          { currentVersion: current?.version ?? 0 },
        );
      }
      const { text, data } = next(current);
      const now = new Date();
      let stored: StoredDocument;
      if (current) {
        // The version check is in the UPDATE itself: a concurrent writer makes it match nothing.
        const updated = await tx.nativeUpdate(
          Document,
          { collection: definition.name, id, version: current.version },
          { data: text, version: current.version + 1, updatedAt: now },
        );
        if (updated !== 1) throw conflict('The document changed meanwhile: reload and retry.');
        stored = { ...current, data, version: current.version + 1, updatedAt: now };
      } else {
        await tx.insert(Document, {
          collection: definition.name,
          id,
          data: text,
          version: 1,
          ownerId: ownerOfNew,
          createdAt: now,
          updatedAt: now,
        });
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
      await writeEntries(tx, definition, id, stored.ownerId, data);
      return { document: stored, kind: current ? 'UPDATED' : 'CREATED' } satisfies WriteResult;
    });
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException)
      throw conflict('A concurrent write conflicted: retry.');
    throw error;
  }
}

/** Deletes a document and its index entries; false when there was none. */
export async function deleteDocument(
  em: EntityManager,
  definition: CollectionDefinition,
  input: { id: string; expectedVersion?: number | null },
): Promise<StoredDocument | null> {
  return em.transactional(async (tx) => {
    const row = await tx.findOne(Document, { collection: definition.name, id: input.id });
    if (!row) {
      if (input.expectedVersion) throw conflict(`No document "${input.id}" exists.`, { currentVersion: 0 });
      return null;
    }
    const current = toStored(row);
    if (
      input.expectedVersion !== undefined &&
      input.expectedVersion !== null &&
      current.version !== input.expectedVersion
    ) {
      throw conflict(`Version ${current.version} is current, not ${input.expectedVersion}.`, {
        currentVersion: current.version,
      });
    }
    const deleted = await tx.nativeDelete(Document, {
      collection: definition.name,
      id: input.id,
      version: current.version,
    });
    if (deleted !== 1) throw conflict('The document changed meanwhile: reload and retry.');
    await tx.nativeDelete(IndexEntry, { collection: definition.name, documentId: input.id });
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

/**
 * Turns `where` into one key range of the index: equality on a prefix of its
 * fields, then at most one range (a lower and/or an upper bound) on the next field.
 */
export function keyRange(index: IndexDefinition, where: IndexQuery | null | undefined): KeyRange {
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
  const connection = em.getConnection();
  const rows = input.index
    ? await connection.execute<{ key: Buffer | Uint8Array; document_id: string }[]>(
        `select e.key, e.document_id from index_entries e where ${where} order by e.key ${direction}, e.document_id ${direction} limit ?`,
        [...params, input.first + 1],
      )
    : await connection.execute<{ key: null; document_id: string }[]>(
        `select null as key, d.id as document_id from documents d where ${where} order by d.id ${direction} limit ?`,
        [...params, input.first + 1],
      );
  const page = rows.slice(0, input.first);
  const documents = await em.find(Document, { collection, id: { $in: page.map((row) => row.document_id) } });
  const byId = new Map(documents.map((row) => [row.id, toStored(row)]));
  return {
    items: page.flatMap((row) => {
      const document = byId.get(row.document_id);
      return document ? [{ document, key: row.key === null ? null : Buffer.from(row.key) }] : [];
    }),
    hasNextPage: rows.length > input.first,
  };
}

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
  const [row] = await em
    .getConnection()
    .execute<{ count: number | string }[]>(`select count(*) as count from ${table} where ${where}`, params);
  return Number(row?.count ?? 0);
}
