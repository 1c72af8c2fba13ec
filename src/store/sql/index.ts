import type { SqlEntityManager } from '@mikro-orm/sql';
import { inBatches } from '../../db.ts';
import type { Logger } from '../../logger.ts';
import type { PubSub } from '../../pubsub.ts';
import type { StoreAbout, StoreBackend } from '../backend.ts';
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
   * The store database's root EntityManager; each call works on a fork of it. A store that is not
   * served yet throws an outage here (src/db.ts, DeferredStore).
   */
  root: () => SqlEntityManager;
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
export function createSqlStore({ root, pubsub, log, about, problem }: SqlStoreOptions): StoreBackend {
  const fork = () => root().fork();
  const changes = new DocumentChanges(pubsub, (collection, id) => getDocument(fork(), collection, id));
  const released = (key: string) => pubsub.publish('lease.released', { key });
  return {
    about,
    problem,
    documents: {
      get: async (collection, id) => getDocument(fork(), collection, id),
      async write(write) {
        const written = await writeDocument(fork(), write);
        changes.announce(written.kind, written.document);
        return written;
      },
      async delete(deletion) {
        const deleted = await deleteDocument(fork(), deletion);
        if (deleted) changes.announce('DELETED', deleted);
        return deleted;
      },
      query: async (query) => queryDocuments(fork(), query),
      count: async (selection) => countDocuments(fork(), selection),
      changed: async (change) => changes.documentOf(change),
      prepare: async (collections) => syncIndexes(fork(), collections, log),
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
      acquire: async (key, holder, ttlMs) => acquireLease(fork(), key, holder, ttlMs),
      renew: async (key, holder, token, ttlMs) => renewLease(fork(), key, holder, token, ttlMs),
      async release(key, holder, token) {
        const done = await releaseLease(fork(), key, holder, token);
        if (done) released(key);
        return done;
      },
      async releaseHeldBy(holders) {
        const keys: string[] = [];
        for (const batch of inBatches(holders)) {
          for (const key of await releaseHeldBy(fork(), batch)) {
            released(key);
            keys.push(key);
          }
        }
        return keys;
      },
      liveHolders: async () => liveHolders(fork()),
      find: async (key) => findLease(fork(), key),
      list: async (options) => listLeases(fork(), options),
      checkFence: async (fence) => checkFence(fork(), fence),
    },
    events: pubSubEvents(pubsub),
    bytes: null,
    archive: sqlArchive(fork),
  };
}
