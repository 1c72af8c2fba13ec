import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import type { Logger } from '../../logger.ts';
import type { StoreCollection, StoreIndex } from '../backend.ts';
import { entryFor, MAX_INDEX_KEY_BYTES } from './documents.ts';
import { BuiltIndex, Document, IndexEntry } from './schema.ts';

const BATCH = 1000;
const PROGRESS_EVERY = 10_000;

const fingerprint = (index: StoreIndex) => JSON.stringify({ fields: index.fields, unique: index.unique });

/**
 * Brings every declared index in line with the stored documents before store operations
 * are served: a new or changed index is rebuilt from the documents (in batches, with a
 * progress line for large collections); a removed one loses its entries; collections
 * no longer configured keep their documents, and the log says so.
 */
export async function syncIndexes(em: SqlEntityManager, declared: Iterable<StoreCollection>, log: Logger) {
  const collections = new Map([...declared].map((collection) => [collection.name, collection]));
  const built = await em.find(BuiltIndex, {});
  for (const row of built) {
    const collection = collections.get(row.collection);
    if (collection && !collection.indexes.has(row.indexName)) {
      await em.nativeDelete(IndexEntry, { collection: row.collection, indexName: row.indexName });
      await em.nativeDelete(BuiltIndex, { collection: row.collection, indexName: row.indexName });
      log.info(
        { collection: row.collection, index: row.indexName },
        'index removed from the configuration: entries dropped',
      );
    }
  }
  for (const collection of collections.values()) {
    for (const index of collection.indexes.values()) {
      const current = built.find((row) => row.collection === collection.name && row.indexName === index.name);
      if (current?.definition === fingerprint(index)) continue;
      await rebuild(em.fork(), collection, index, log);
    }
  }
  const orphaned = await em
    .getConnection()
    .execute<{ collection: string; count: number | string }[]>(
      'select collection, count(*) as count from documents group by collection',
    );
  for (const { collection, count } of orphaned) {
    if (!collections.has(collection)) {
      log.warn(
        { collection, documents: Number(count) },
        `collection "${collection}" is no longer configured; its ${count} documents are kept`,
      );
    }
  }
}

async function rebuild(em: SqlEntityManager, collection: StoreCollection, index: StoreIndex, log: Logger) {
  const started = Date.now();
  await em.nativeDelete(IndexEntry, { collection: collection.name, indexName: index.name });
  let after = '';
  let done = 0;
  for (;;) {
    // A fork per batch: documents already indexed leave the identity map, which would otherwise
    // hold the whole collection and make every later flush walk it.
    const batch = em.fork();
    const documents = await batch.find(
      Document,
      { collection: collection.name, id: { $gt: after } },
      { orderBy: { id: 'asc' }, limit: BATCH, fields: ['collection', 'id', 'data', 'ownerId'] },
    );
    if (documents.length === 0) break;
    const entries = documents.map((document) => {
      const entry = entryFor(
        collection.name,
        index,
        document.id,
        document.ownerId ?? null,
        JSON.parse(document.data),
      );
      if (entry.key.length > MAX_INDEX_KEY_BYTES) {
        throw new Error(
          `Index "${index.name}" of collection "${collection.name}": document "${document.id}" has a key of ` +
            `${entry.key.length} bytes once encoded, at most ${MAX_INDEX_KEY_BYTES}: fix the data or the index's fields.`,
        );
      }
      return entry;
    });
    try {
      await batch.insertMany(IndexEntry, entries);
    } catch (error) {
      if (!(error instanceof UniqueConstraintViolationException)) throw error;
      // One at a time, to name a document that shares a value; the first violation rolls the batch back.
      await batch.transactional(async (tx) => {
        for (const entry of entries) {
          try {
            await tx.insert(IndexEntry, entry);
          } catch (violation) {
            if (!(violation instanceof UniqueConstraintViolationException)) throw violation;
            throw new Error(
              `Index "${index.name}" of collection "${collection.name}" is unique, but stored documents share a value ` +
                `of ${index.fields.join(', ')} (document "${entry.documentId}" among them): fix the data or drop "unique".`,
            );
          }
        }
      });
    }
    done += documents.length;
    after = documents.at(-1)!.id;
    if (done % PROGRESS_EVERY === 0) {
      log.info({ collection: collection.name, index: index.name, documents: done }, 'building index');
    }
  }
  await em.upsert(BuiltIndex, {
    collection: collection.name,
    indexName: index.name,
    definition: fingerprint(index),
    builtAt: new Date(),
  });
  log.info(
    { collection: collection.name, index: index.name, documents: done, ms: Date.now() - started },
    'index built',
  );
}
