import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { PorticoError } from '../../errors.ts';
import type {
  BlobMetadataStore,
  BlobRecord,
  DocumentBody,
  DocumentChange,
  DocumentStore,
  LeaseStore,
  StoreAbout,
  StoreArchive,
  StoreBackend,
  StoredDocument,
  WriteConditions,
} from '../backend.ts';
import type { BlobStorage } from '../blob-storage.ts';
import { remoteArchive } from './archive.ts';
import { remoteBytes } from './bytes.ts';
import { type RemoteConnection, servingCalls } from './connection.ts';
import type { RemoteEvents } from './events.ts';
import {
  fromWireBlob,
  fromWireDocument,
  toWireBlob,
  toWireCollection,
  type Wire,
  type WireCollection,
} from './protocol.ts';

/** A write whose view changed before the data server applied it is tried again (with the new view), this often. */
const STALE_RETRIES = 20;

/** `/ready` asks the data server with this timeout, as it asks a database. */
const STATUS_TIMEOUT_MS = 2000;

/**
 * The documents this gateway wrote last, up to this much JSON: the first view of their next write
 * (one round trip instead of two), and the document behind this gateway's own change events.
 */
const WRITTEN_CACHE_BYTES = 16 * 1024 * 1024;

const documentKey = (collection: string, id: string) => `${collection}\u0000${id}`;

/**
 * What the data server checks a write's view against. A guard decides from the document's
 * existence and owner alone (DocumentGuard), so a replacement holds while the same document (its
 * creation time) has the same owner: concurrent replacements do not refuse each other. A body made
 * from the document (a patch) needs the very version it was made from.
 */
interface ViewCondition {
  ifCreatedAt: string | null;
  ifOwner: string | null;
  ifVersion?: number;
}

const viewCondition = (document: StoredDocument | null, exact: boolean): ViewCondition => ({
  ifCreatedAt: document ? document.createdAt.toISOString() : null,
  ifOwner: document?.ownerId ?? null,
  ...(exact ? { ifVersion: document?.version ?? 0 } : {}),
});

type Call = <T>(path: string, body: unknown) => Promise<T>;

/**
 * The store of another Portico (the data server), reached over the store protocol. The data
 * server enforces versions, unique indexes, fences and lease exclusion for every gateway that
 * shares it; this side runs what is the gateway's own: its access rules (`guard`, `body`) on a
 * view of the document, sent with the write so that it applies only while the document is as
 * viewed (else it is tried again on the current one: optimistic, no lock held over the network).
 */
export class RemoteStore implements StoreBackend {
  readonly about: StoreAbout;
  readonly documents: DocumentStore;
  readonly blobs: BlobMetadataStore;
  readonly leases: LeaseStore;
  readonly events: RemoteEvents;
  readonly bytes: BlobStorage;
  readonly archive: StoreArchive;
  readonly #connection: RemoteConnection;
  /** Null while the store serves; else why it does not (not yet checked, or not answering at start). */
  #notServing: string | null;
  readonly #written = new LRUCache<string, StoredDocument>({ maxSize: WRITTEN_CACHE_BYTES });
  readonly #changed = new WeakMap<DocumentChange, Promise<StoredDocument | null>>();

  constructor(
    connection: RemoteConnection,
    events: RemoteEvents,
    about: StoreAbout,
    { serving }: { serving: boolean },
  ) {
    this.#connection = connection;
    this.events = events;
    this.about = about;
    this.#notServing = serving ? null : 'the data server has not answered since the start';
    const { call } = servingCalls(connection, () => this.#notServing);
    this.documents = this.#documents(call);
    this.blobs = this.#blobs(call);
    this.leases = this.#leases(call);
    this.bytes = remoteBytes(connection, () => this.#notServing);
    this.archive = remoteArchive(connection, () => this.#notServing);
  }

  /**
   * Runs `prepare` (the modules' `prepareStore`, which checks the declared collections) and then
   * serves. Throws when the data server answers but cannot serve this gateway (the start fails);
   * returns false when it does not answer (the caller tries again).
   */
  async serve(prepare: (store: StoreBackend) => Promise<void>): Promise<boolean> {
    try {
      // Requests still answer SERVICE_UNAVAILABLE meanwhile: `documents.prepare`, the check, is not gated.
      await prepare(this);
      this.#notServing = null;
      this.events.start();
      return true;
    } catch (error) {
      if (error instanceof PorticoError && error.code === 'SERVICE_UNAVAILABLE') {
        this.#notServing = error.message.replace(/^The store does not answer: /, '').replace(/\.$/, '');
        return false;
      }
      throw error;
    }
  }

  async problem(): Promise<string | null> {
    if (this.#notServing !== null) return this.#notServing;
    try {
      const { problem } = await this.#connection.call<{ problem: string | null }>(
        '/status',
        {},
        STATUS_TIMEOUT_MS,
      );
      return problem === null ? null : `the data server's store: ${problem}`;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  close(): void {
    this.events.stop();
    this.#connection.close();
  }

  /** Keeps what this gateway wrote, sized by its JSON text. */
  #remember(document: StoredDocument, bytes: number) {
    this.#written.set(documentKey(document.collection, document.id), document, { size: Math.max(1, bytes) });
  }

  #documents(call: Call): DocumentStore {
    const get = async (collection: string, id: string) => {
      const found = await call<Wire<StoredDocument> | null>('/documents/get', { collection, id });
      return found && fromWireDocument(found);
    };
    /**
     * Runs a write's rules on a view of the document and sends it with what the view was, until the
     * data server applies it to that very state (else it answers `stale` with the current document,
     * which becomes the next view: no extra read). The first view is the document as this gateway
     * last wrote it, or, for a replacement of one it does not know, none (most are creations); a
     * rule that refuses such a guess gets the document read instead.
     */
    const conditionally = async <T>(
      collection: string,
      id: string,
      firstView: 'guess' | 'read',
      /** Whether the write needs the very version its view had (its body is made from it). */
      exact: boolean,
      attempt: (condition: ViewCondition & { asMissing?: boolean }) => Promise<T>,
      rules: (view: StoredDocument | null) => StoredDocument | null,
    ): Promise<T> => {
      const key = documentKey(collection, id);
      let view: { document: StoredDocument | null; guessed: boolean } | null = this.#written.has(key)
        ? { document: this.#written.get(key) ?? null, guessed: true }
        : firstView === 'guess'
          ? { document: null, guessed: true }
          : null;
      for (let tries = 1; ; tries++) {
        view ??= { document: await get(collection, id), guessed: false };
        let seen: StoredDocument | null;
        try {
          seen = rules(view.document);
        } catch (error) {
          if (!view.guessed) throw error;
          view = null;
          continue;
        }
        try {
          return await attempt({
            ...viewCondition(view.document, exact),
            asMissing: view.document !== null && seen === null,
          });
        } catch (error) {
          if (!(error instanceof PorticoError && error.extensions.stale === true)) throw error;
          if (tries >= STALE_RETRIES)
            throw new PorticoError('CONFLICT', 'The document keeps changing: retry.');
          // Writers of one document in step would meet again: a short random wait spreads them.
          await sleep(Math.random() * Math.min(50, 2 ** tries));
          const current = error.extensions.current as Wire<StoredDocument> | null | undefined;
          view =
            current === undefined ? null : { document: current && fromWireDocument(current), guessed: false };
        }
      }
    };
    const conditions = (write: WriteConditions) => ({
      expectedVersion: write.expectedVersion ?? null,
      fence: write.fence ?? null,
    });
    return {
      get,
      write: async (write) => {
        const { collection, id, body, guard, ownerOfNew } = write;
        const send = async (made: DocumentBody, condition: object) => {
          const written = await call<{ document: Wire<StoredDocument>; kind: 'CREATED' | 'UPDATED' }>(
            '/documents/write',
            {
              collection: collection.name,
              id,
              ownerOfNew,
              text: made.text,
              ...conditions(write),
              ...condition,
            },
          );
          const document = fromWireDocument(written.document);
          this.#remember(document, made.text.length);
          return { document, kind: written.kind };
        };
        if (!guard && typeof body !== 'function') return send(body, {});
        let made: DocumentBody | undefined;
        return conditionally(
          collection.name,
          id,
          typeof body === 'function' ? 'read' : 'guess',
          typeof body === 'function',
          (condition) => send(made!, condition),
          (view) => {
            const seen = guard ? guard(view) : view;
            made = typeof body === 'function' ? body(seen) : body;
            return seen;
          },
        );
      },
      delete: async (deletion) => {
        const { collection, id, guard } = deletion;
        const send = async (condition: object) => {
          const deleted = await call<Wire<StoredDocument> | null>('/documents/delete', {
            collection,
            id,
            ...conditions(deletion),
            ...condition,
          });
          this.#written.delete(documentKey(collection, id));
          return deleted && fromWireDocument(deleted);
        };
        if (!guard) return send({});
        return conditionally(collection, id, 'read', false, (condition) => send(condition), guard);
      },
      query: async (query) => {
        const page = await call<{
          items: { document: Wire<StoredDocument>; position: string }[];
          hasNextPage: boolean;
        }>('/documents/query', {
          collection: query.collection,
          index: query.index?.name ?? null,
          range: query.range ?? null,
          ownerId: query.ownerId ?? null,
          order: query.order,
          first: query.first,
          after: query.after ?? null,
        });
        return {
          items: page.items.map(({ document, position }) => ({
            document: fromWireDocument(document),
            position,
          })),
          hasNextPage: page.hasNextPage,
        };
      },
      count: async (selection) =>
        (
          await call<{ count: number }>('/documents/count', {
            collection: selection.collection,
            index: selection.index?.name ?? null,
            range: selection.range ?? null,
            ownerId: selection.ownerId ?? null,
          })
        ).count,
      changed: (change) => {
        let document = this.#changed.get(change);
        if (!document) {
          const last = this.#written.get(documentKey(change.collection, change.id));
          const written = last?.version === change.version ? last : undefined;
          document =
            change.kind === 'DELETED'
              ? Promise.resolve(null)
              : written
                ? Promise.resolve(written)
                : get(change.collection, change.id);
          this.#changed.set(change, document);
        }
        return document;
      },
      prepare: async (collections) => {
        const declared: WireCollection[] = [...collections].map(toWireCollection);
        // Not gated: it is what brings the store to serve.
        const { differences } = await this.#connection.call<{ differences: string[] }>('/hello', {
          collections: declared,
        });
        if (differences.length > 0) {
          throw new PorticoError(
            'BAD_USER_INPUT',
            `The data server at ${this.about.url} declares the collections differently:\n${differences.map((line) => `  - ${line}`).join('\n')}`,
            { differences },
          );
        }
      },
    };
  }

  #blobs(call: Call): BlobMetadataStore {
    return {
      find: async (id) => {
        const found = await call<Wire<BlobRecord> | null>('/blobs/find', { id });
        return found && fromWireBlob(found);
      },
      findMany: async (ids) =>
        (await call<Wire<BlobRecord>[]>('/blobs/find-many', { ids })).map(fromWireBlob),
      list: async ({ ownerId, contentTypePrefix, after, limit }) =>
        (
          await call<Wire<BlobRecord>[]>('/blobs/list', {
            ownerId: ownerId ?? null,
            everyone: ownerId === undefined,
            // Sent only when filtering, so unfiltered lists stay the call they were.
            ...(contentTypePrefix ? { contentTypePrefix } : {}),
            after: after ?? null,
            limit,
          })
        ).map(fromWireBlob),
      // The bytes were staged on the data server (`bytes`): it places them under its own lock.
      create: async (blob, creation) => {
        await call('/blobs/create', {
          blob: toWireBlob(blob),
          staged: creation.staged,
          fence: creation.fence ?? null,
        });
      },
      delete: async (id, deletion) => {
        const found = await call<Wire<BlobRecord> | null>('/blobs/find', { id });
        if (!found) return false;
        deletion.guard(fromWireBlob(found));
        return (await call<{ deleted: boolean }>('/blobs/delete', { id, fence: deletion.fence ?? null }))
          .deleted;
      },
      collect: async (content) => {
        await call('/blobs/collect', { sha256: content.sha256, size: content.size });
      },
      unreferenced: (sha256s) => call<string[]>('/blobs/unreferenced', { sha256s }),
    };
  }

  #leases(call: Call): LeaseStore {
    return {
      acquire: (key, holder, ttlMs) => call('/leases/acquire', { key, holder, ttlMs }),
      renew: (key, holder, token, ttlMs) => call('/leases/renew', { key, holder, token, ttlMs }),
      release: async (key, holder, token) =>
        (await call<{ released: boolean }>('/leases/release', { key, holder, token })).released,
      releaseHeldBy: (holders) => call('/leases/release-held-by', { holders }),
      liveHolders: () => call('/leases/live-holders', {}),
      find: (key) => call('/leases/find', { key }),
      list: ({ prefix, after, limit }) => call('/leases/list', { prefix, after: after ?? null, limit }),
      checkFence: async (fence) => {
        await call('/leases/check-fence', { fence });
      },
    };
  }
}
