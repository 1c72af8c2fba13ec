import type { SqlEntityManager } from '@mikro-orm/sql';
import { PorticoError, type Runtime } from '../../src/index.ts';
import { type CollectionDefinition, definitions } from './config.ts';
import * as service from './service.ts';

declare module '../../src/pubsub.ts' {
  interface Topics {
    /** A document was created, replaced, patched or deleted. Ids only: pub/sub messages stay small. */
    'document.changed': DocumentChanged;
  }
}

/**
 * The document store for server-side code: the same rules as GraphQL (declared
 * collections and indexes, JSON Schema, size limit, versions, unique indexes) and
 * the same change events, without a viewer's access rules (the caller is trusted).
 */
export function collection(runtime: Runtime, name: string): CollectionDefinition {
  const found = definitions(runtime.settings).get(name);
  if (!found) throw new PorticoError('NOT_FOUND', `No collection "${name}".`);
  return found;
}

export interface DocumentChanged {
  kind: 'CREATED' | 'UPDATED' | 'DELETED';
  collection: string;
  id: string;
  version: number;
  ownerId: string | null;
}

// The document behind each change event, read at most once per instance however many watch it.
const changedDocuments = new WeakMap<DocumentChanged, Promise<service.StoredDocument | null>>();

function announce(
  runtime: Runtime,
  kind: 'CREATED' | 'UPDATED' | 'DELETED',
  document: service.StoredDocument,
) {
  const change: DocumentChanged = {
    kind,
    collection: document.collection,
    id: document.id,
    version: document.version,
    ownerId: document.ownerId,
  };
  // This instance's subscribers get the written version itself; others read it on delivery.
  changedDocuments.set(change, Promise.resolve(kind === 'DELETED' ? null : document));
  runtime.pubsub.publish('document.changed', change);
}

/**
 * The document a change event is about: the written version on the instance that wrote it, the
 * current one elsewhere (null once deleted).
 */
export function changedDocument(runtime: Runtime, change: DocumentChanged) {
  let document = changedDocuments.get(change);
  if (!document) {
    document =
      change.kind === 'DELETED'
        ? Promise.resolve(null)
        : service.getDocument(runtime.db.store.em.fork(), change.collection, change.id);
    changedDocuments.set(change, document);
  }
  return document;
}

export const get = async (runtime: Runtime, em: SqlEntityManager, name: string, id: string) =>
  service.getDocument(em, collection(runtime, name).name, id);

/** A write of the service, announced once it committed. */
async function announced(runtime: Runtime, write: Promise<service.WriteResult>) {
  const result = await write;
  announce(runtime, result.kind, result.document);
  return result.document;
}

export const put = async (
  runtime: Runtime,
  em: SqlEntityManager,
  name: string,
  input: Parameters<typeof service.putDocument>[2],
  guard?: service.WriteGuard,
) => announced(runtime, service.putDocument(em, collection(runtime, name), input, guard));

export const patch = async (
  runtime: Runtime,
  em: SqlEntityManager,
  name: string,
  input: Parameters<typeof service.patchDocument>[2],
  guard?: service.WriteGuard,
) => announced(runtime, service.patchDocument(em, collection(runtime, name), input, guard));

export async function remove(
  runtime: Runtime,
  em: SqlEntityManager,
  name: string,
  input: Parameters<typeof service.deleteDocument>[2],
  guard?: service.WriteGuard,
) {
  const deleted = await service.deleteDocument(em, collection(runtime, name), input, guard);
  if (deleted) announce(runtime, 'DELETED', deleted);
  return deleted !== null;
}

export interface QueryOptions {
  index?: string | null;
  where?: service.IndexQuery | null;
  order?: 'ASC' | 'DESC';
  first: number;
  after?: { key: Buffer | null; id: string } | null;
  ownerId?: string | null;
}

/** The declared index by name; INDEX_NOT_DECLARED (naming the declared ones) otherwise. */
export function indexOf(definition: CollectionDefinition, name: string | null | undefined) {
  if (!name) return null;
  const index = definition.indexes.get(name);
  if (!index) {
    const declared = [...definition.indexes.values()].map(
      (item) => `${item.name} (${item.fields.join(', ')})`,
    );
    throw new PorticoError(
      'INDEX_NOT_DECLARED',
      `Collection "${definition.name}" declares no index "${name}"; declared: ${declared.join(', ') || 'none'}. ` +
        `Declare it in the configuration: collections.${definition.name}.indexes.${name} = ["<field>", ...].`,
      { declared: [...definition.indexes.keys()] },
    );
  }
  return index;
}

export async function query(runtime: Runtime, em: SqlEntityManager, name: string, options: QueryOptions) {
  const definition = collection(runtime, name);
  return service.queryDocuments(em, definition.name, {
    index: indexOf(definition, options.index),
    where: options.where,
    order: options.order ?? 'ASC',
    first: options.first,
    after: options.after,
    ownerId: options.ownerId,
  });
}

export async function count(
  runtime: Runtime,
  em: SqlEntityManager,
  name: string,
  options: Omit<QueryOptions, 'first' | 'order' | 'after'>,
) {
  const definition = collection(runtime, name);
  return service.countDocuments(em, definition.name, {
    index: indexOf(definition, options.index),
    where: options.where,
    ownerId: options.ownerId,
  });
}
