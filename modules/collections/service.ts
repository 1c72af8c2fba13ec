import {
  type DocumentChange,
  type DocumentCursor,
  type DocumentGuard,
  newId,
  PorticoError,
  type Runtime,
  type WriteConditions,
} from '../../src/index.ts';
import { type CollectionDefinition, definitions } from './config.ts';
import { type JsonObject, toJsonObject } from './json.ts';
import { mergePatch } from './patch.ts';
import { type IndexQuery, selectionOf } from './queries.ts';
import { checkId, validate } from './validation.ts';

/**
 * The documents of the declared collections, for GraphQL and for server-side code: the same rules
 * (declared collections and indexes, JSON Schema, size limit, versions, unique indexes) and the
 * same change events, without a viewer's access rules (the caller brings those as a guard).
 * Documents live in the store (`runtime.store.documents`), which checks versions, fences and
 * unique indexes within each write.
 */
export function collection(runtime: Runtime, name: string): CollectionDefinition {
  const found = definitions(runtime.settings).get(name);
  if (!found) throw new PorticoError('NOT_FOUND', `No collection "${name}".`);
  return found;
}

export const documentNotFound = (collection: string, id: string) =>
  new PorticoError('NOT_FOUND', `No document "${id}" in "${collection}".`);

export const get = async (runtime: Runtime, name: string, id: string) =>
  runtime.store.documents.get(collection(runtime, name).name, id);

/**
 * Creates (no id, or a new one) or replaces a document. `expectedVersion` makes it conditional
 * (0: must not exist yet).
 */
export async function put(
  runtime: Runtime,
  name: string,
  input: { id?: string | null; data: Record<string, unknown>; ownerId: string | null } & WriteConditions,
  guard?: DocumentGuard,
) {
  const definition = collection(runtime, name);
  const id = input.id ?? newId();
  checkId(id);
  const body = validate(definition, toJsonObject(input.data, 'Document data'));
  const { document } = await runtime.store.documents.write({
    collection: definition,
    id,
    expectedVersion: input.expectedVersion,
    fence: input.fence,
    guard,
    body,
    ownerOfNew: input.ownerId,
  });
  return document;
}

/** Applies a JSON Merge Patch to an existing document. */
export async function patch(
  runtime: Runtime,
  name: string,
  input: { id: string; patch: Record<string, unknown> } & WriteConditions,
  guard?: DocumentGuard,
) {
  const definition = collection(runtime, name);
  checkId(input.id);
  const changes = toJsonObject(input.patch, 'The patch');
  const { document } = await runtime.store.documents.write({
    collection: definition,
    id: input.id,
    expectedVersion: input.expectedVersion,
    fence: input.fence,
    guard,
    body: (current) => {
      if (!current) throw documentNotFound(definition.name, input.id);
      const data = mergePatch(toJsonObject(current.data, 'The document'), changes) as JsonObject;
      return validate(definition, data);
    },
    ownerOfNew: null,
  });
  return document;
}

/** Deletes a document; false when there was none. */
export async function remove(
  runtime: Runtime,
  name: string,
  input: { id: string } & WriteConditions,
  guard?: DocumentGuard,
) {
  const deleted = await runtime.store.documents.delete({
    collection: collection(runtime, name).name,
    id: input.id,
    expectedVersion: input.expectedVersion,
    fence: input.fence,
    guard,
  });
  return deleted !== null;
}

export interface QueryOptions {
  index?: string | null;
  where?: IndexQuery | null;
  order?: 'ASC' | 'DESC';
  first: number;
  after?: DocumentCursor | null;
  ownerId?: string | null;
}

/** One page of documents: through a declared index, or in id order. */
export async function query(runtime: Runtime, name: string, options: QueryOptions) {
  return runtime.store.documents.query({
    ...selectionOf(collection(runtime, name), options),
    order: options.order ?? 'ASC',
    first: options.first,
    after: options.after,
  });
}

export async function count(
  runtime: Runtime,
  name: string,
  options: Omit<QueryOptions, 'first' | 'order' | 'after'>,
) {
  return runtime.store.documents.count(selectionOf(collection(runtime, name), options));
}

/**
 * The document a change event is about: the written version on the instance that wrote it, the
 * current one elsewhere (null once deleted).
 */
export const changedDocument = (runtime: Runtime, change: DocumentChange) =>
  runtime.store.documents.changed(change);
