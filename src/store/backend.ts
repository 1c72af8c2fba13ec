import type { TableRow, TableShape } from '../tables.ts';
import type { BlobStorage, StagedBlob } from './blob-storage.ts';

/**
 * The business store: documents of collections with their index entries, blob metadata, and
 * leases with their fencing tokens, plus the events their changes raise. Modules reach business
 * data only through this interface (`runtime.store`), never through SQL or an EntityManager; the
 * backend owns every statement, every transaction and the store's schema. What stays in the modules
 * is what does not depend on where data lives: validation, access rules, index and collection
 * definitions from the configuration, GraphQL and routes. Blob bytes are not here: they stay
 * behind the blobs module's storage driver, and the backend only decides, under its lock of a
 * content address, when the module may place or drop them (the `place` and `drop` callbacks).
 *
 * Three implementations: SQL on SQLite or PostgreSQL (`src/store/sql/`); a remote Portico, the
 * data server, reached over the store protocol (`src/store/remote/`, a `portico+https://` URL),
 * which enforces versions, unique indexes, fences and lease exclusion for every gateway sharing it;
 * and the switch (`src/store/switch.ts`), which hands each call to the backend current when it
 * begins so that an admin can change backends at runtime. Hence the rules:
 * - Every call is self-contained: it takes no EntityManager, transaction or connection, and what
 *   must be atomic (a compare-and-set write with its fence check and index entries, a blob row
 *   with its content lock, a lease grant) happens inside one call. Callbacks a call takes
 *   (`guard`, `body`, `place`, `drop`) run inside it, in its isolation.
 * - Queries speak the configuration's terms (a declared index and the values of its fields);
 *   how keys are encoded and ranges scanned is the backend's.
 * - Change events are the backend's: it raises them for its writes, and `events` is the feed that
 *   delivers them to this gateway, also for writes made elsewhere (other instances; for a shared
 *   remote store, other gateways). Modules listen there, never to the pub/sub topics underneath.
 * - Failures keep the contract's codes: an outage is an error `isDatabaseUnavailable` recognises
 *   (SERVICE_UNAVAILABLE), a refusal a `PorticoError` (CONFLICT, FENCE_REJECTED, ...).
 */
export interface StoreBackend {
  /** What this backend is, as admins see it (`storeBackend`); holds no secret. */
  readonly about: StoreAbout;
  /** Null while the backend answers; else why it does not (for admins, never for clients). */
  problem(): Promise<string | null>;
  readonly documents: DocumentStore;
  readonly blobs: BlobMetadataStore;
  readonly leases: LeaseStore;
  readonly events: StoreEvents;
  /**
   * Where blob bytes live when the backend holds them itself (a remote Portico streams them to and
   * from its own storage); null: in the blobs module's storage driver.
   */
  readonly bytes: BlobStorage | null;
  /** The store's data as archives carry it (`portico backup` and `restore`). */
  readonly archive: StoreArchive;
}

export interface StoreAbout {
  readonly kind: 'sqlite' | 'postgres' | 'remote';
  /** Where it is, with any password removed. */
  readonly url: string;
  /** `environment`: DATABASE_URL chose it; `switch`: an admin did, while the gateway ran. */
  readonly source: 'environment' | 'switch';
  /** When it became this gateway's store. */
  readonly since: Date;
}

// ---------------------------------------------------------------- documents

/** A declared index, as the configuration defines it. */
export interface StoreIndex {
  readonly name: string;
  /** Dotted field paths, in key order. */
  readonly fields: readonly string[];
  /** Refuses a second document with the same values; a document missing one of the fields is not held unique. */
  readonly unique: boolean;
}

/** A declared collection: its name and indexes. */
export interface StoreCollection {
  readonly name: string;
  readonly indexes: ReadonlyMap<string, StoreIndex>;
  /** The JSON Schema its documents follow (the gateway validates); a remote store's must be the same. */
  readonly schema?: Readonly<Record<string, unknown>>;
}

export interface StoredDocument {
  collection: string;
  id: string;
  data: Record<string, unknown>;
  version: number;
  ownerId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** A write's claim to hold a lease: it passes only while `token` is the latest granted for `lease`. */
export interface Fence {
  lease: string;
  token: number;
}

/** A document's new content: its data, and that data as the JSON text that is stored. */
export interface DocumentBody {
  data: Record<string, unknown>;
  text: string;
}

/**
 * Checks the caller may change the document as it is now (null: it does not exist yet), throwing
 * otherwise; returns the document as the caller may know it: null for one that must answer as if
 * it were missing. It decides from the document's existence and owner only, never its data or
 * version: so a remote store need not refuse a replacement because another one landed first.
 */
export type DocumentGuard = (current: StoredDocument | null) => StoredDocument | null;

/** What makes a write conditional: the document's version, and holding a lease. */
export interface WriteConditions {
  /** 0: the document must not exist yet. CONFLICT (with `currentVersion`) otherwise. */
  expectedVersion?: number | null;
  /** FENCE_REJECTED unless its token is the lease's latest. */
  fence?: Fence | null;
}

/**
 * Creates or replaces a document, with its index entries, atomically: the guard, the fence, the
 * version and unique indexes are checked against the document as it is when the write commits.
 */
export interface DocumentWrite extends WriteConditions {
  collection: StoreCollection;
  id: string;
  /** The owner of the document when this write creates it. */
  ownerOfNew: string | null;
  guard?: DocumentGuard;
  /**
   * The new content: known up front (a replacement), or made from the document as the guard
   * returned it (a patch; it throws to refuse).
   */
  body: DocumentBody | ((current: StoredDocument | null) => DocumentBody);
}

export interface DocumentWritten {
  document: StoredDocument;
  kind: 'CREATED' | 'UPDATED';
}

export interface DocumentDeletion extends WriteConditions {
  collection: string;
  id: string;
  guard?: DocumentGuard;
}

/** A bound of a range on one index field. */
export interface RangeBound {
  value: unknown;
  inclusive: boolean;
}

/**
 * Which entries of an index a query reads: equality on a prefix of its fields, then at most a
 * lower and an upper bound on the field after that prefix. Values are JSON.
 */
export interface IndexRange {
  /** Values of the index's leading fields, in its field order. */
  equal: readonly unknown[];
  lower?: RangeBound | null;
  upper?: RangeBound | null;
}

/** The documents a query or count reads. */
export interface DocumentSelection {
  collection: string;
  /** Null: every document of the collection, in id order. */
  index: StoreIndex | null;
  /** With an index: the part of it to read (all of it without). */
  range?: IndexRange | null;
  /** Only this owner's documents. */
  ownerId?: string | null;
}

/** Where a page ended: the backend's opaque position of the last document, and its id. */
export interface DocumentCursor {
  position: string;
  id: string;
}

export interface DocumentQuery extends DocumentSelection {
  order: 'ASC' | 'DESC';
  first: number;
  after?: DocumentCursor | null;
}

export interface DocumentPage {
  /** Each document with its position, for a cursor after it. */
  items: { document: StoredDocument; position: string }[];
  hasNextPage: boolean;
}

/** A document was created, replaced, patched or deleted. Ids only: events stay small. */
export interface DocumentChange {
  kind: 'CREATED' | 'UPDATED' | 'DELETED';
  collection: string;
  id: string;
  version: number;
  ownerId: string | null;
}

export interface DocumentStore {
  get(collection: string, id: string): Promise<StoredDocument | null>;
  /** Raises `document.changed` once committed. */
  write(write: DocumentWrite): Promise<DocumentWritten>;
  /** Deletes a document; null when there was none. Raises `document.changed` once committed. */
  delete(deletion: DocumentDeletion): Promise<StoredDocument | null>;
  /** One page, keyset-paginated: complete and never repeating while documents arrive. */
  query(query: DocumentQuery): Promise<DocumentPage>;
  count(selection: DocumentSelection): Promise<number>;
  /**
   * The document a change event is about: the written version where it was written, the
   * current one elsewhere (null once deleted); read at most once per event however many ask.
   */
  changed(change: DocumentChange): Promise<StoredDocument | null>;
  /**
   * Brings the store in line with the declared collections before it serves (`prepareStore`):
   * index builds, or for a store another server holds, a check that it declares them alike.
   * Throws (the start fails) when it cannot.
   */
  prepare(collections: Iterable<StoreCollection>): Promise<void>;
}

// ---------------------------------------------------------------- blob metadata

/** A blob's metadata row; the bytes are found by `sha256` in the module's storage driver. */
export interface BlobRecord {
  readonly id: string;
  readonly sha256: string;
  readonly size: number;
  readonly contentType: string;
  readonly filename: string | null;
  readonly ownerId: string | null;
  readonly createdAt: Date;
}

/** The bytes behind blobs: one content address, and their size. */
export interface BlobContent {
  sha256: string;
  size: number;
}

export interface BlobCreation {
  fence?: Fence | null;
  /** The upload, staged where the bytes go: a backend that holds the bytes itself places them from there. */
  staged: StagedBlob;
  /**
   * Makes the bytes available at the blob's content address (or finds them there). It runs under
   * that address's lock, so no delete of the last reference to the same bytes interleaves. (Not
   * called by a backend that holds the bytes itself.)
   */
  place: () => Promise<void>;
}

export interface BlobDeletion {
  /** Refuses (throws) for a blob the caller may not delete. */
  guard: (blob: BlobRecord) => void;
  fence?: Fence | null;
  /** Removes the bytes at a content address no blob references any more; under that address's lock. */
  drop: (sha256: string) => Promise<void>;
}

export interface BlobMetadataStore {
  find(id: string): Promise<BlobRecord | null>;
  /** The blobs among `ids` that exist, in no particular order. */
  findMany(ids: readonly string[]): Promise<BlobRecord[]>;
  /**
   * Up to `limit` blobs, newest (greatest id) first, before `after`; one owner's, or everyone's when
   * `ownerId` is undefined; only those whose content type starts with `contentTypePrefix`
   * (ASCII case-insensitive) when it is given.
   */
  list(options: {
    ownerId: string | undefined;
    contentTypePrefix?: string | null;
    after: string | undefined;
    limit: number;
  }): Promise<BlobRecord[]>;
  /** Records a blob, its bytes placed in the same step under the content's lock; nothing is recorded when it throws. */
  create(blob: BlobRecord, creation: BlobCreation): Promise<void>;
  /**
   * Deletes a blob and, when it was the last reference to its bytes, drops them: one step under the
   * content's lock. False when there was no such blob (or a concurrent delete won).
   */
  delete(id: string, deletion: BlobDeletion): Promise<boolean>;
  /** Under the content's lock: when no blob references it, forgets it and drops its bytes (after a failed `create`). */
  collect(content: BlobContent, drop: (sha256: string) => Promise<void>): Promise<void>;
  /**
   * Those of `sha256s` (at most 1000) that no blob references now, in no particular order: the
   * sweep's candidates in one read, each then `collect`ed under its lock, which decides.
   */
  unreferenced(sha256s: readonly string[]): Promise<string[]>;
}

// ---------------------------------------------------------------- leases

/** A lease as stored; times are epoch milliseconds of the store's clock, which every instance shares. */
export interface LeaseRecord {
  key: string;
  holder: string;
  /** The fencing token of the latest grant: it only grows. */
  token: number;
  acquiredAt: number;
  expiresAt: number;
}

export interface LeaseStore {
  /** Grants the key to `holder` when it is free (never held, released or expired), with the next token; null when held. */
  acquire(key: string, holder: string, ttlMs: number): Promise<LeaseRecord | null>;
  /** Extends the holder's unexpired grant to now + ttl; null when that grant is over. */
  renew(key: string, holder: string, token: number, ttlMs: number): Promise<LeaseRecord | null>;
  /** Ends the holder's unexpired grant now and raises `lease.released`; false when it was already over. */
  release(key: string, holder: string, token: number): Promise<boolean>;
  /** Ends every live lease of these holders (their credential ended), raising `lease.released` for each; returns their keys. */
  releaseHeldBy(holders: readonly string[]): Promise<string[]>;
  /** The holders of live leases. */
  liveHolders(): Promise<string[]>;
  /** The live lease on a key with the store's time; null when the key is free. */
  find(key: string): Promise<{ lease: LeaseRecord; now: number } | null>;
  /** Up to `limit` live leases whose key starts with `prefix`, in key order, after the key `after`. */
  list(options: { prefix: string | null; after: string | undefined; limit: number }): Promise<LeaseRecord[]>;
  /** Throws FENCE_REJECTED unless the fence's token is its lease's latest (ahead of a write; writes check their own). */
  checkFence(fence: Fence): Promise<void>;
}

// ---------------------------------------------------------------- events

export interface StoreEventPayloads {
  'document.changed': DocumentChange;
  /** A lease ended before its expiry (released, or its credential ended): wakes waiting acquirers. */
  'lease.released': { key: string };
}

export type StoreEventName = keyof StoreEventPayloads;

/**
 * The store's change events as this gateway receives them, with the pub/sub's guarantees: at
 * most once, an instance's own events at once, others' in each writer's order.
 */
export interface StoreEvents {
  on<K extends StoreEventName>(kind: K, listener: (event: StoreEventPayloads[K]) => void): () => void;
  /** The events from this call on, as an async iterator; `return()` stops it. */
  subscribe<K extends StoreEventName>(kind: K): AsyncIterable<StoreEventPayloads[K]>;
  /** Called when events may have been missed: who keeps state from them should re-check it. */
  onGap(listener: () => void): () => void;
  /** Resolves once every kind asked for so far is delivered from everywhere. */
  ready(): Promise<void>;
}

// ---------------------------------------------------------------- archive

/**
 * The store's tables an archive carries, in the order a snapshot gives them: the content addresses
 * first (a backup copies their bytes as they come), then what refers to them. Index entries are
 * not carried: a restore builds them from the documents, as an index build does.
 */
export const ARCHIVED_STORE_TABLES = ['blob_contents', 'blobs', 'documents', 'leases'] as const;

export type ArchivedStoreTable = (typeof ARCHIVED_STORE_TABLES)[number];

/** What a store's snapshot gives: first its tables and their sizes, then their rows. */
export type StoreArchiveItem =
  | {
      kind: 'start';
      shapes: TableShape[];
      rows: Record<ArchivedStoreTable, number>;
      /** The bytes of every blob content, as their rows say. */
      blobBytes: number;
    }
  | { kind: 'rows'; table: ArchivedStoreTable; rows: TableRow[] };

export interface StoreArchive {
  /**
   * One consistent snapshot of the store, taken while it serves writes: the start item, then the
   * rows of ARCHIVED_STORE_TABLES, table by table, each in primary-key order. Ending the iteration
   * early lets the snapshot go.
   */
  export(): AsyncIterable<StoreArchiveItem>;
  /** The shapes of the archived tables in this store, which archived rows must fit. */
  shapes(): Promise<TableShape[]>;
  /** Whether the store holds any document, blob or lease. */
  isEmpty(): Promise<boolean>;
  /** Removes every document with its index entries, every blob record and every lease (a forced restore). */
  clear(): Promise<void>;
  /**
   * Adds archived rows (a restore), all or none; rows the store refuses (a duplicate key, a value
   * too long for its column) are BAD_USER_INPUT. Their index entries are built afterwards.
   */
  load(table: ArchivedStoreTable, rows: readonly TableRow[]): Promise<void>;
  /**
   * After the last `load`: a store whose index entries another server keeps (a remote store) has it
   * build them now; on a SQL store, `documents.prepare`, which the restore runs next, builds them.
   */
  loaded(): Promise<void>;
}
