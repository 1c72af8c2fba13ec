import { PorticoError, serviceUnavailable } from '../../errors.ts';
import type {
  BlobMetadataStore,
  BlobRecord,
  DocumentChange,
  DocumentGuard,
  DocumentStore,
  LeaseStore,
  StoreAbout,
  StoreBackend,
  StoredDocument,
} from '../backend.ts';
import type { BlobStorage } from '../blob-storage.ts';
import { remoteBytes } from './bytes.ts';
import type { RemoteConnection } from './connection.ts';
import type { RemoteEvents } from './events.ts';
import {
  fromWireBlob,
  fromWireDocument,
  toWireBlob,
  toWireCollection,
  type Wire,
  type WireCollection,
} from './protocol.ts';

/** A write whose guard read a version that changed before the data server applied it is tried again, this often. */
const STALE_RETRIES = 8;

/** `/ready` asks the data server with this timeout, as it asks a database. */
const STATUS_TIMEOUT_MS = 2000;

/** The written documents kept for `changed`, so this gateway's own events need no read. */
const RECENT_WRITES = 1000;

type Call = <T>(path: string, body: unknown) => Promise<T>;

/**
 * The store of another Portico (the data server), reached over the store protocol. The data
 * server enforces versions, unique indexes, fences and lease exclusion for every gateway that
 * shares it; this side runs what is the gateway's own: its access rules (`guard`, `body`) against
 * the document as the data server holds it, sent back with the version they saw so that the write
 * applies only to that version (else it is tried again: optimistic, never a lock held over the network).
 */
export class RemoteStore implements StoreBackend {
  readonly about: StoreAbout;
  readonly documents: DocumentStore;
  readonly blobs: BlobMetadataStore;
  readonly leases: LeaseStore;
  readonly events: RemoteEvents;
  readonly bytes: BlobStorage;
  readonly #connection: RemoteConnection;
  /** Null while the store serves; else why it does not (not yet checked, or not answering at start). */
  #notServing: string | null;
  readonly #recent = new Map<string, StoredDocument>();
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
    const call: Call = async (path, body) => {
      if (this.#notServing !== null)
        throw serviceUnavailable(`The store does not answer: ${this.#notServing}.`);
      return connection.call(path, body);
    };
    this.documents = this.#documents(call);
    this.blobs = this.#blobs(call);
    this.leases = this.#leases(call);
    this.bytes = remoteBytes(connection, () => this.#notServing);
  }

  /**
   * Runs `prepare` (the modules' `prepareStore`, which checks the declared collections) and then
   * serves. Throws when the data server answers but cannot serve this gateway (the start fails);
   * returns false when it does not answer (the caller tries again).
   */
  async serve(prepare: (store: StoreBackend) => Promise<void>): Promise<boolean> {
    const wasServing = this.#notServing;
    this.#notServing = null;
    try {
      await prepare(this);
      this.events.start();
      return true;
    } catch (error) {
      this.#notServing = wasServing;
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

  #remember(document: StoredDocument) {
    const key = `${document.collection}\u0000${document.id}\u0000${document.version}`;
    this.#recent.set(key, document);
    if (this.#recent.size > RECENT_WRITES) this.#recent.delete(this.#recent.keys().next().value as string);
  }

  #documents(call: Call): DocumentStore {
    const get = async (collection: string, id: string) => {
      const found = await call<Wire<StoredDocument> | null>('/documents/get', { collection, id });
      return found && fromWireDocument(found);
    };
    /** The document, the guard's view of it, and what the data server must check to apply a write to that view. */
    const guarded = async (collection: string, id: string, guard: DocumentGuard | undefined) => {
      const found = await get(collection, id);
      const seen = guard ? guard(found) : found;
      return {
        seen,
        condition: { ifVersion: found?.version ?? 0, asMissing: found !== null && seen === null },
      };
    };
    /** Runs `attempt` until the data server applies it to the version the guard saw. */
    const untilCurrent = async <T>(attempt: () => Promise<T>): Promise<T> => {
      for (let tries = 1; ; tries++) {
        try {
          return await attempt();
        } catch (error) {
          if (!(error instanceof PorticoError && error.extensions.stale === true)) throw error;
          if (tries >= STALE_RETRIES)
            throw new PorticoError('CONFLICT', 'The document keeps changing: retry.');
        }
      }
    };
    return {
      get,
      write: (write) =>
        untilCurrent(async () => {
          const { collection, id, body, guard, ownerOfNew } = write;
          const view = guard || typeof body === 'function' ? await guarded(collection.name, id, guard) : null;
          const made = typeof body === 'function' ? body(view?.seen ?? null) : body;
          const written = await call<{ document: Wire<StoredDocument>; kind: 'CREATED' | 'UPDATED' }>(
            '/documents/write',
            {
              collection: collection.name,
              id,
              ownerOfNew,
              text: made.text,
              expectedVersion: write.expectedVersion ?? null,
              fence: write.fence ?? null,
              ...view?.condition,
            },
          );
          const document = fromWireDocument(written.document);
          this.#remember(document);
          return { document, kind: written.kind };
        }),
      delete: (deletion) =>
        untilCurrent(async () => {
          const { collection, id, guard } = deletion;
          const view = guard ? await guarded(collection, id, guard) : null;
          const deleted = await call<Wire<StoredDocument> | null>('/documents/delete', {
            collection,
            id,
            expectedVersion: deletion.expectedVersion ?? null,
            fence: deletion.fence ?? null,
            ...view?.condition,
          });
          return deleted && fromWireDocument(deleted);
        }),
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
          const written = this.#recent.get(`${change.collection}\u0000${change.id}\u0000${change.version}`);
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
      list: async ({ ownerId, after, limit }) =>
        (
          await call<Wire<BlobRecord>[]>('/blobs/list', {
            ownerId: ownerId ?? null,
            everyone: ownerId === undefined,
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
