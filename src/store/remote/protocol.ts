import { ExtensionPoint } from '../../extensions.ts';
import type {
  BlobRecord,
  DocumentBody,
  DocumentChange,
  LeaseRecord,
  StoreArchiveItem,
  StoreCollection,
  StoredDocument,
} from '../backend.ts';

/**
 * The store protocol, version 1 (docs/store-protocol.md): how a gateway whose `DATABASE_URL` is
 * `portico+http(s)://` uses another Portico's store. Plain HTTP/1.1 on persistent connections:
 * one JSON POST per store call, blob bytes as streamed bodies, change events as one long-lived
 * NDJSON response. The version is in the path; a server that does not speak it answers 404.
 */
export const STORE_PROTOCOL_PATH = '/store/v1';

/** The scope an API key needs to use this gateway's store from another gateway (admins have it). */
export const STORE_SERVE_SCOPE = 'store:serve';

/** A collection this gateway declares, as a data server needs it. */
export interface DeclaredCollection extends StoreCollection {
  /**
   * Checks a document a remote gateway writes (its id, size, depth and JSON Schema), as this
   * gateway's own writes are checked; returns what to store. Throws the contract's refusal.
   */
  accept(id: string, data: unknown): DocumentBody;
}

/**
 * The collections this gateway declares (the collections module contributes them): a data server
 * compares a remote gateway's declarations with these and checks its writes against them.
 */
export const declaredCollections = new ExtensionPoint<DeclaredCollection>('store: declared collection');

/** A collection as the protocol carries it: index maps as arrays, the JSON Schema as declared. */
export interface WireCollection {
  name: string;
  indexes: { name: string; fields: string[]; unique: boolean }[];
  schema: Record<string, unknown> | null;
}

export const toWireCollection = (collection: StoreCollection): WireCollection => ({
  name: collection.name,
  indexes: [...collection.indexes.values()]
    .map(({ name, fields, unique }) => ({ name, fields: [...fields], unique }))
    .sort((a, b) => a.name.localeCompare(b.name)),
  schema: collection.schema ?? null,
});

/**
 * Why a remote gateway's declared collections differ from the data server's, one line each (empty:
 * they agree). Access rules are each gateway's own and are not compared.
 */
export function collectionDifferences(
  remote: readonly WireCollection[],
  local: ReadonlyMap<string, WireCollection>,
): string[] {
  const differences: string[] = [];
  for (const collection of remote) {
    const here = local.get(collection.name);
    if (!here) {
      differences.push(`collection "${collection.name}" is not declared on the data server`);
      continue;
    }
    const theirs = new Map(here.indexes.map((index) => [index.name, index]));
    for (const index of collection.indexes) {
      const other = theirs.get(index.name);
      if (!other)
        differences.push(`${collection.name}: index "${index.name}" is not declared on the data server`);
      else if (other.fields.join(',') !== index.fields.join(','))
        differences.push(
          `${collection.name}: index "${index.name}" has fields [${index.fields.join(', ')}] here and [${other.fields.join(', ')}] on the data server`,
        );
      else if (other.unique !== index.unique)
        differences.push(
          `${collection.name}: index "${index.name}" is ${index.unique ? '' : 'not '}unique here and ${other.unique ? '' : 'not '}unique on the data server`,
        );
      theirs.delete(index.name);
    }
    for (const name of theirs.keys()) {
      differences.push(`${collection.name}: index "${name}" of the data server is not declared here`);
    }
    if (canonicalJson(collection.schema) !== canonicalJson(here.schema)) {
      differences.push(`${collection.name}: its JSON Schema differs from the data server's`);
    }
  }
  return differences;
}

/** JSON with object keys sorted, so that equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

// ---------------------------------------------------------------- values on the wire

/** Dates travel as ISO-8601 text. */
export type Wire<T> = { [K in keyof T]: T[K] extends Date ? string : T[K] };

export const toWireDocument = (document: StoredDocument): Wire<StoredDocument> => ({
  ...document,
  createdAt: document.createdAt.toISOString(),
  updatedAt: document.updatedAt.toISOString(),
});

export const fromWireDocument = (document: Wire<StoredDocument>): StoredDocument => ({
  ...document,
  createdAt: new Date(document.createdAt),
  updatedAt: new Date(document.updatedAt),
});

export const toWireBlob = (blob: BlobRecord): Wire<BlobRecord> => ({
  ...blob,
  createdAt: blob.createdAt.toISOString(),
});

export const fromWireBlob = (blob: Wire<BlobRecord>): BlobRecord => ({
  ...blob,
  createdAt: new Date(blob.createdAt),
});

export type WireLease = LeaseRecord;

/** A refusal as the data server answers it (any status but 2xx): the contract's code and message. */
export interface WireError {
  code: string;
  message: string;
  extensions?: Record<string, unknown>;
}

/**
 * One line of the event stream (`GET /store/v1/events`). Events carry `seq`, which `?after=` names
 * when the stream is opened again; `gap` says events after it are lost; `ping` lines keep an idle
 * connection known alive.
 */
export type WireEvent =
  | { kind: 'document.changed'; event: DocumentChange; seq: string }
  | { kind: 'lease.released'; event: { key: string }; seq: string }
  | { kind: 'gap' }
  | { kind: 'ping' };

/** How often the event stream sends a ping; a client that hears nothing for three of them reconnects. */
export const EVENT_PING_MS = 10_000;

/**
 * The scope a key needs for the archive calls (`/store/v1/archive/…`, `portico backup` and
 * `restore` of a gateway whose store is remote) on top of the protocol's: they read or replace the
 * whole store, every gateway's data.
 */
export const STORE_ARCHIVE_SCOPE = 'admin';

/**
 * One line of a store's snapshot (`POST /store/v1/archive/export`, NDJSON): the items of
 * `StoreArchive.export` with owners and holders in the caller's terms, a page of rows split over
 * lines that stay small, then `end`, which tells a complete snapshot from a cut connection; or
 * `error` when the snapshot failed midway.
 */
export type WireArchiveLine = StoreArchiveItem | { kind: 'end' } | { kind: 'error'; error: WireError };

// ---------------------------------------------------------------- namespaces

/**
 * Owners and lease holders of a remote gateway, as the data server stores them: prefixed by the
 * gateway's id (`identity.ts`), so no two gateways' ids meet.
 * Ids of others come back as an opaque `~` digest that matches no id of the caller.
 */
export interface Namespace {
  /** A caller's id as stored. */
  inward(id: string): string;
  inward(id: string | null): string | null;
  /** A stored id as the caller sees it. */
  outward(id: string): string;
  outward(id: string | null): string | null;
  /** Whether a stored id is the caller's. */
  owns(stored: string): boolean;
}

/** Parses a `portico+http(s)://` store URL into the data server's base URL; throws saying why it cannot be used. */
export function parseRemoteStoreUrl(url: string): URL {
  const match = /^portico\+(https?):\/\//i.exec(url);
  if (!match)
    throw new Error('a remote store URL starts with portico+https:// (or portico+http:// on loopback)');
  let parsed: URL;
  try {
    parsed = new URL(url.slice('portico+'.length));
  } catch {
    throw new Error(`"${url}" is not a URL`);
  }
  if (parsed.username || parsed.password) {
    throw new Error(
      'a remote store URL carries no credentials: the key comes from PORTICO_REMOTE_API_KEY or `portico login`',
    );
  }
  if (parsed.search || parsed.hash) throw new Error('a remote store URL has no query or fragment');
  if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname)) {
    throw new Error('portico+http:// is for loopback addresses only; use portico+https://');
  }
  parsed.pathname = parsed.pathname.replace(/\/+$/, '');
  return parsed;
}

export const isRemoteStoreUrl = (url: string) => /^portico\+/i.test(url);

const isLoopback = (host: string) =>
  host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

/** The URL as admins see it and the protocol names it. */
export const describeRemoteUrl = (server: URL) =>
  `portico+${server.protocol.replace(':', '')}://${server.host}${server.pathname.replace(/\/$/, '')}`;
