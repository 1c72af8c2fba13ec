import { inBatches, type StoreDatabase } from '../../db.ts';
import type { Logger } from '../../logger.ts';
import type { PubSub } from '../../pubsub.ts';
import type { StoreAbout, StoreBackend, StoreCollection } from '../backend.ts';
import { DocumentChanges, pubSubEvents } from '../events.ts';
import { sqlArchive } from './archive.ts';
import {
  collectContent,
  createBlob,
  deleteBlob,
  findBlob,
  findBlobs,
  listBlobs,
  unreferencedContents,
} from './blobs.ts';
import { countDocuments, deleteDocument, getDocument, queryDocuments, writeDocument } from './documents.ts';
import { syncIndexes } from './index-builds.ts';
import {
  acquireLease,
  checkFence,
  findLease,
  listLeases,
  liveHolders,
  releaseHeldBy,
  releaseLease,
  renewLease,
} from './leases.ts';

export interface SqlStoreOptions {
  /**
   * The store database: documents and leases go through its prepared statements, blob metadata and
   * index builds through a fork of its EntityManager. A store that is not served yet throws an
   * outage here (src/db.ts, DeferredStore).
   */
  database: () => StoreDatabase;
  /** Carries the change events between the instances that share the database. */
  pubsub: PubSub;
  log: Logger;
  about: StoreAbout;
  problem: () => Promise<string | null>;
}

/**
 * The store on SQLite or PostgreSQL: every statement and transaction of the business data
 * (documents.ts, blobs.ts, leases.ts, index-builds.ts), its tables (schema.ts), its key encoding
 * (keys.ts). The instances that share the database share the gateway's pub/sub, which carries the
 * change events each raises after its writes commit.
 */
export function createSqlStore({ database, pubsub, log, about, problem }: SqlStoreOptions): StoreBackend {
  const fork = () => database().em.fork();
  const sql = () => database().sql;
  // The declared collections, as the last `prepare` saw them: a delete finds its index entries by key.
  let declared = new Map<string, StoreCollection>();
  const changes = new DocumentChanges(pubsub, (collection, id) => getDocument(sql(), collection, id));
  const released = (key: string) => pubsub.publish('lease.released', { key });
  return {
    about,
    problem,
    documents: {
      get: async (collection, id) => getDocument(sql(), collection, id),
      async write(write) {
        const written = await writeDocument(sql(), write);
        changes.announce(written.kind, written.document);
        return written;
      },
      async delete(deletion) {
        const deleted = await deleteDocument(sql(), deletion, declared.get(deletion.collection));
        if (deleted) changes.announce('DELETED', deleted);
        return deleted;
      },
      query: async (query) => queryDocuments(sql(), query),
      count: async (selection) => countDocuments(sql(), selection),
      changed: async (change) => changes.documentOf(change),
      async prepare(collections) {
        const byName = new Map([...collections].map((collection) => [collection.name, collection]));
        await syncIndexes(fork(), byName.values(), log);
        declared = byName;
      },
    },
    blobs: {
      find: async (id) => findBlob(fork(), id),
      findMany: async (ids) => findBlobs(fork(), ids),
      list: async (options) => listBlobs(fork(), options),
      create: async (blob, creation) => createBlob(fork(), blob, creation),
      delete: async (id, deletion) => deleteBlob(fork(), id, deletion),
      collect: async (content, drop) => collectContent(fork(), content, drop),
      unreferenced: async (sha256s) => unreferencedContents(fork(), sha256s),
    },
    leases: {
      acquire: async (key, holder, ttlMs) => acquireLease(sql(), key, holder, ttlMs),
      renew: async (key, holder, token, ttlMs) => renewLease(sql(), key, holder, token, ttlMs),
      async release(key, holder, token) {
        const done = await releaseLease(sql(), key, holder, token);
        if (done) released(key);
        return done;
      },
      async releaseHeldBy(holders) {
        const keys: string[] = [];
        for (const batch of inBatches(holders)) {
          for (const key of await releaseHeldBy(sql(), batch)) {
            released(key);
            keys.push(key);
          }
        }
        return keys;
      },
      liveHolders: async () => liveHolders(sql()),
      find: async (key) => findLease(sql(), key),
      list: async (options) => listLeases(sql(), options),
      checkFence: async (fence) => checkFence(sql(), fence),
    },
    events: pubSubEvents(pubsub),
    bytes: null,
    archive: sqlArchive(fork),
  };
}
