import { z } from 'zod';
import {
  ARCHIVED_STORE_TABLES,
  type ArchivedStoreTable,
  answer,
  callerOf,
  collectionDifferences,
  type DeclaredCollection,
  type DocumentChange,
  type DocumentSelection,
  declaredCollections,
  EVENT_PING_MS,
  type IndexRange,
  type LeaseRecord,
  type Namespace,
  PorticoError,
  type RequestContext,
  type Route,
  readCall,
  rowProblem,
  STORE_ARCHIVE_SCOPE,
  STORE_PROTOCOL_PATH,
  type StoreArchiveItem,
  type StoredDocument,
  type TableRow,
  toWireCollection,
  toWireDocument,
  type WireArchiveLine,
  type WireEvent,
  wireErrorOf,
  wireFence,
  wireText,
  wireVersion,
} from '../../src/index.ts';
import type { EventJournal, JournalEntry } from './service.ts';

/**
 * The data server's side of the store protocol (docs/store-protocol.md) for documents, leases,
 * change events and the handshake; the blobs module serves the blob calls. Each call runs on this
 * gateway's own store (`runtime.store`), so a data server may itself use any backend. The caller's
 * owners and holders are namespaced (`Namespace`), and its access rules are its own: it sends the
 * view of the document its rules saw, and the write applies only while the document is so.
 */

/** Events queued for a caller that reads slower than they come; past this its stream ends (it resumes with `?after=`). */
const MAX_QUEUED_EVENTS = 10_000;

const name = wireText(64);
/** Document ids and owner ids, as the store's columns hold them. */
const id = wireText(128);
const json = z.unknown();
const range = z
  .object({
    equal: z.array(json).max(8),
    lower: z.object({ value: json, inclusive: z.boolean() }).nullable().optional(),
    upper: z.object({ value: json, inclusive: z.boolean() }).nullable().optional(),
  })
  .nullable();
/**
 * What the caller's rules saw (see the remote backend's ViewCondition): the document's creation
 * time (its incarnation; null: none) and owner, its version when the write was made from it, and
 * whether the rules hid it.
 */
const seen = {
  ifCreatedAt: z.iso.datetime().nullable().optional(),
  ifOwner: id.nullable().optional(),
  ifVersion: z.number().int().nonnegative().optional(),
  asMissing: z.boolean().optional(),
};
const selection = { collection: name, index: name.nullable(), range, ownerId: id.nullable() };

const calls = {
  get: z.object({ collection: name, id }),
  write: z.object({
    collection: name,
    id,
    ownerOfNew: id.nullable(),
    text: z.string().max(2 * 1024 * 1024),
    expectedVersion: wireVersion,
    fence: wireFence,
    ...seen,
  }),
  delete: z.object({ collection: name, id, expectedVersion: wireVersion, fence: wireFence, ...seen }),
  query: z.object({
    ...selection,
    order: z.enum(['ASC', 'DESC']),
    first: z.number().int().min(1).max(1000),
    after: z.object({ position: z.string().max(16_384), id }).nullable(),
  }),
  count: z.object(selection),
};

const lease = {
  key: wireText(256),
  /** Prefixed by the caller's namespace, it must fit the store's 64 characters. */
  holder: wireText(47),
  token: z.number().int().nonnegative(),
  ttlMs: z
    .number()
    .int()
    .min(1)
    .max(365 * 24 * 3600 * 1000),
};
const leaseCalls = {
  acquire: z.object({ key: lease.key, holder: lease.holder, ttlMs: lease.ttlMs }),
  renew: z.object({ key: lease.key, holder: lease.holder, token: lease.token, ttlMs: lease.ttlMs }),
  release: z.object({ key: lease.key, holder: lease.holder, token: lease.token }),
  releaseHeldBy: z.object({ holders: z.array(lease.holder).max(10_000) }),
  find: z.object({ key: lease.key }),
  list: z.object({
    prefix: lease.key.nullable(),
    after: lease.key.nullable(),
    limit: z.number().int().min(1).max(1000),
  }),
  checkFence: z.object({ fence: wireFence.unwrap() }),
};

const hello = z.object({
  collections: z
    .array(
      z.object({
        name,
        indexes: z
          .array(z.object({ name, fields: z.array(wireText(512)).max(8), unique: z.boolean() }))
          .max(64),
        schema: z.record(z.string(), z.unknown()).nullable(),
      }),
    )
    .max(1000),
});

/** Archived rows a load takes in one call (the call's size limit applies too). */
const MAX_LOADED_ROWS = 10_000;

const archiveLoad = z.object({
  table: z.enum(ARCHIVED_STORE_TABLES),
  rows: z.array(z.record(z.string(), z.unknown())).max(MAX_LOADED_ROWS),
});

/**
 * The archived columns that hold an owner or a lease holder, which the caller names in its own
 * terms, and how long the caller's may be (its namespace prefix must fit the column too).
 */
const NAMESPACED: Partial<Record<ArchivedStoreTable, { column: string; limit: z.ZodType }>> = {
  documents: { column: 'ownerId', limit: id.nullable() },
  blobs: { column: 'ownerId', limit: id.nullable() },
  leases: { column: 'holder', limit: lease.holder },
};

/** A snapshot's page goes out in lines of about this much JSON, so that no line grows with the page. */
const ARCHIVE_LINE_BYTES = 1024 * 1024;

/** The protocol's routes on this gateway. */
export function storeProtocolRoutes(journal: EventJournal): Route[] {
  const path = (rest: string) => `${STORE_PROTOCOL_PATH}${rest}`;
  return [
    {
      method: 'POST',
      path: path('/hello'),
      handler: (request, context) =>
        answer(context, async () => {
          const { collections } = await readCall(request, hello);
          const local = new Map(
            declared(context).map((collection) => [collection.name, toWireCollection(collection)]),
          );
          return { protocol: 1, differences: collectionDifferences(collections, local) };
        }),
    },
    {
      method: 'POST',
      // Not `/health`: Yoga answers its health check on every path that ends so.
      path: path('/status'),
      handler: (_request, context) =>
        answer(context, async () => ({ problem: await context.runtime.store.problem() })),
    },
    {
      method: 'POST',
      path: path('/documents/:call'),
      handler: (request, context, params) =>
        answer(context, (caller) => documentCall(request, context, caller, params.call ?? '')),
    },
    {
      method: 'POST',
      path: path('/leases/:call'),
      handler: (request, context, params) =>
        answer(context, (caller) => leaseCall(request, context, caller, params.call ?? '')),
    },
    {
      method: 'POST',
      path: path('/archive/:call'),
      handler: (request, context, params) =>
        answer(context, (caller) => archiveCall(request, context, caller, params.call ?? '')),
    },
    {
      method: 'GET',
      path: path('/events'),
      handler: (request, context) => {
        const caller = callerOf(context);
        if (caller instanceof Response) return caller;
        return eventStream(request, context, caller, journal);
      },
    },
  ];
}

const declared = (context: RequestContext): DeclaredCollection[] =>
  context.runtime.instances.contributions(declaredCollections);

function collectionNamed(context: RequestContext, collection: string): DeclaredCollection {
  const found = declared(context).find((candidate) => candidate.name === collection);
  if (!found) {
    throw new PorticoError('BAD_USER_INPUT', `No collection "${collection}" is declared on the data server.`);
  }
  return found;
}

function indexNamed(collection: DeclaredCollection, index: string | null) {
  if (index === null) return null;
  const found = collection.indexes.get(index);
  if (!found) {
    throw new PorticoError('INDEX_NOT_DECLARED', `No index "${index}" is declared on ${collection.name}.`);
  }
  return found;
}

/** The documents a query or count names, in this gateway's terms: its declared index, the caller's owner. */
function selectionOf(
  context: RequestContext,
  caller: Namespace,
  args: { collection: string; index: string | null; range: unknown; ownerId: string | null },
): DocumentSelection {
  const collection = collectionNamed(context, args.collection);
  return {
    collection: collection.name,
    index: indexNamed(collection, args.index),
    range: args.range as IndexRange | null,
    ownerId: caller.inward(args.ownerId),
  };
}

/** The caller's view of a document: its owner in the caller's terms. */
const outwardDocument = (caller: Namespace, document: StoredDocument) =>
  toWireDocument({ ...document, ownerId: caller.outward(document.ownerId) });

/**
 * The guard a caller's view describes: the write applies to that state of the document (the same
 * incarnation and owner, and version when given), else it is `stale` and the answer carries the
 * current document, the caller's next view.
 */
function sawView(
  caller: Namespace,
  view: { ifCreatedAt?: string | null; ifOwner?: string | null; ifVersion?: number; asMissing?: boolean },
) {
  const { ifCreatedAt, ifOwner, ifVersion, asMissing } = view;
  if (ifCreatedAt === undefined) return undefined;
  return (current: StoredDocument | null) => {
    const same = current
      ? current.createdAt.toISOString() === ifCreatedAt &&
        caller.outward(current.ownerId) === (ifOwner ?? null) &&
        (ifVersion === undefined || current.version === ifVersion)
      : ifCreatedAt === null;
    if (!same) {
      throw new PorticoError('CONFLICT', 'The document changed since it was read.', {
        stale: true,
        current: current && outwardDocument(caller, current),
      });
    }
    return asMissing ? null : current;
  };
}

async function documentCall(request: Request, context: RequestContext, caller: Namespace, call: string) {
  const { documents } = context.runtime.store;
  switch (call) {
    case 'get': {
      const args = await readCall(request, calls.get);
      const document = await documents.get(args.collection, args.id);
      return document && outwardDocument(caller, document);
    }
    case 'write': {
      const args = await readCall(request, calls.write);
      const collection = collectionNamed(context, args.collection);
      let data: unknown;
      try {
        data = JSON.parse(args.text);
      } catch {
        throw new PorticoError('BAD_USER_INPUT', 'A document is a JSON object.');
      }
      // The data server's own checks hold for every gateway's writes: id, size, depth, JSON Schema.
      const body = collection.accept(args.id, data);
      const written = await documents.write({
        collection,
        id: args.id,
        ownerOfNew: caller.inward(args.ownerOfNew),
        expectedVersion: args.expectedVersion,
        fence: args.fence,
        guard: sawView(caller, args),
        body,
      });
      return { document: outwardDocument(caller, written.document), kind: written.kind };
    }
    case 'delete': {
      const args = await readCall(request, calls.delete);
      const deleted = await documents.delete({
        collection: args.collection,
        id: args.id,
        expectedVersion: args.expectedVersion,
        fence: args.fence,
        guard: sawView(caller, args),
      });
      return deleted && outwardDocument(caller, deleted);
    }
    case 'query': {
      const args = await readCall(request, calls.query);
      const page = await documents.query({
        ...selectionOf(context, caller, args),
        order: args.order,
        first: args.first,
        after: args.after,
      });
      return {
        items: page.items.map(({ document, position }) => ({
          document: outwardDocument(caller, document),
          position,
        })),
        hasNextPage: page.hasNextPage,
      };
    }
    case 'count': {
      const args = await readCall(request, calls.count);
      return { count: await documents.count(selectionOf(context, caller, args)) };
    }
    default:
      throw new PorticoError('NOT_FOUND', `No store call documents/${call}.`);
  }
}

async function leaseCall(request: Request, context: RequestContext, caller: Namespace, call: string) {
  const { leases } = context.runtime.store;
  const outward = (record: LeaseRecord | null) =>
    record && { ...record, holder: caller.outward(record.holder) };
  switch (call) {
    case 'acquire': {
      const args = await readCall(request, leaseCalls.acquire);
      return outward(await leases.acquire(args.key, caller.inward(args.holder), args.ttlMs));
    }
    case 'renew': {
      const args = await readCall(request, leaseCalls.renew);
      return outward(await leases.renew(args.key, caller.inward(args.holder), args.token, args.ttlMs));
    }
    case 'release': {
      const args = await readCall(request, leaseCalls.release);
      return { released: await leases.release(args.key, caller.inward(args.holder), args.token) };
    }
    case 'release-held-by': {
      const args = await readCall(request, leaseCalls.releaseHeldBy);
      return leases.releaseHeldBy(args.holders.map((holder) => caller.inward(holder)));
    }
    case 'live-holders':
      return (await leases.liveHolders())
        .filter((holder) => caller.owns(holder))
        .map((holder) => caller.outward(holder));
    case 'find': {
      const args = await readCall(request, leaseCalls.find);
      const found = await leases.find(args.key);
      return found && { lease: outward(found.lease), now: found.now };
    }
    case 'list': {
      const args = await readCall(request, leaseCalls.list);
      const listed = await leases.list({
        prefix: args.prefix,
        after: args.after ?? undefined,
        limit: args.limit,
      });
      return listed.map(outward);
    }
    case 'check-fence': {
      const args = await readCall(request, leaseCalls.checkFence);
      await leases.checkFence(args.fence);
      return { ok: true };
    }
    default:
      throw new PorticoError('NOT_FOUND', `No store call leases/${call}.`);
  }
}

/**
 * The change events as NDJSON, from `?after=` on when the journal still holds what followed it
 * (else a `gap` line first), then live, with a ping every EVENT_PING_MS. It ends when the caller
 * goes away, falls too far behind, or its key is revoked, and when this gateway stops.
 */
function eventStream(request: Request, context: RequestContext, caller: Namespace, journal: EventJournal) {
  const encoder = new TextEncoder();
  const line = (entry: WireEvent) => encoder.encode(`${JSON.stringify(entry)}\n`);
  const outward = (entry: JournalEntry | { kind: 'gap' }): WireEvent =>
    entry.kind === 'document.changed'
      ? {
          kind: entry.kind,
          seq: entry.seq,
          event: { ...entry.event, ownerId: caller.outward(entry.event.ownerId) } satisfies DocumentChange,
        }
      : entry;
  const after = new URL(request.url).searchParams.get('after');
  let stop = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const cleanups: (() => void)[] = [];
      let ended = false;
      stop = () => {
        ended = true;
        for (const cleanup of cleanups.splice(0)) cleanup();
      };
      const end = () => {
        stop();
        try {
          controller.close();
        } catch {
          // Closed already.
        }
      };
      const send = (entry: WireEvent) => {
        if (ended) return;
        if ((controller.desiredSize ?? 0) < -MAX_QUEUED_EVENTS) return end();
        try {
          controller.enqueue(line(entry));
        } catch {
          stop();
        }
      };
      const { missed, unsubscribe } = journal.follow(after, (entry) => send(outward(entry)));
      cleanups.push(unsubscribe);
      if (missed === null) send({ kind: 'gap' });
      else for (const entry of missed) send(outward(entry));
      if (ended) return;
      const ping = setInterval(() => send({ kind: 'ping' }), EVENT_PING_MS);
      cleanups.push(() => clearInterval(ping));
      const { apiKeyId } = context.viewer;
      if (apiKeyId) cleanups.push(context.runtime.live.track({ kind: 'apiKey', id: apiKeyId }, end));
      request.signal.addEventListener('abort', stop);
      cleanups.push(() => request.signal.removeEventListener('abort', stop));
      context.runtime.stopping.addEventListener('abort', end);
      cleanups.push(() => context.runtime.stopping.removeEventListener('abort', end));
    },
    cancel: () => stop(),
  });
  return new Response(body, {
    headers: {
      'content-type': 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    },
  });
}

/**
 * The store's archive (`portico backup` and `restore` of a gateway whose store this is): the whole
 * store, every gateway's data, so the key needs the scope admin as well. Owners and holders go out
 * and come in as in the caller's document reads and writes: its own without their namespace,
 * others' as `~` digests (which a load then keeps in the caller's namespace).
 */
async function archiveCall(request: Request, context: RequestContext, caller: Namespace, call: string) {
  if (!context.viewer.scopes.has(STORE_ARCHIVE_SCOPE)) {
    throw new PorticoError(
      'FORBIDDEN',
      `The store's archive (all of its data) needs a key with the scope ${STORE_ARCHIVE_SCOPE}.`,
      { scope: STORE_ARCHIVE_SCOPE },
    );
  }
  const { runtime } = context;
  const { archive } = runtime.store;
  switch (call) {
    case 'export':
      return exportArchive(request, context, caller);
    case 'shapes':
      return { shapes: await archive.shapes() };
    case 'empty':
      return { empty: await archive.isEmpty() };
    case 'clear':
      await archive.clear();
      return { cleared: true };
    case 'load': {
      const { table, rows } = await readCall(request, archiveLoad);
      const shape = (await archive.shapes()).find((candidate) => candidate.table === table)!;
      const namespaced = NAMESPACED[table];
      rows.forEach((row, i) => {
        const problem =
          rowProblem(shape, row) ??
          (namespaced && !namespaced.limit.safeParse(row[namespaced.column]).success
            ? `column "${namespaced.column}" is too long or holds U+0000`
            : null) ??
          (table === 'documents' ? dataProblem(row.data) : null);
        if (problem) throw new PorticoError('BAD_USER_INPUT', `Bad ${table} row ${i}: ${problem}.`);
      });
      await archive.load(
        table,
        namespaced
          ? rows.map((row) => ({
              ...row,
              [namespaced.column]: caller.inward(row[namespaced.column] as string | null),
            }))
          : rows,
      );
      return { loaded: rows.length };
    }
    case 'loaded':
      await archive.loaded();
      // What a restore here would run next: the index builds of this server's declarations.
      for (const module of runtime.modules) await runtime.instances.of(module).prepareStore?.(runtime.store);
      return { built: true };
    default:
      throw new PorticoError('NOT_FOUND', `No store call archive/${call}.`);
  }
}

/** Why a document row's `data` is no JSON object (the index builds read it), or null. */
function dataProblem(data: unknown): string | null {
  try {
    const parsed: unknown = JSON.parse(data as string);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return null;
  } catch {
    // Said below.
  }
  return 'column "data" holds no JSON object';
}

/**
 * The store's snapshot as NDJSON (WireArchiveLine), read from the snapshot only as fast as the
 * caller takes it: the snapshot stays open while the caller copies blob bytes, and closes when the
 * caller goes away. Opening it is the call's answer (a refusal keeps its status); a failure midway
 * is an `error` line, and only a complete snapshot ends with `end`.
 */
async function exportArchive(request: Request, context: RequestContext, caller: Namespace) {
  const items = context.runtime.store.archive.export()[Symbol.asyncIterator]();
  let next: IteratorResult<StoreArchiveItem> | null = await items.next();
  const encoder = new TextEncoder();
  const close = () => void items.return?.().catch(() => {});
  request.signal.addEventListener('abort', close, { once: true });
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const item = next ?? (await items.next());
          next = null;
          if (item.done) {
            controller.enqueue(encoder.encode(lineOf({ kind: 'end' })));
            controller.close();
            return;
          }
          for (const line of archiveLines(caller, item.value)) controller.enqueue(encoder.encode(line));
        } catch (error) {
          controller.enqueue(
            encoder.encode(lineOf({ kind: 'error', error: wireErrorOf(context, error).wire })),
          );
          controller.close();
          close();
        }
      },
      cancel: close,
    },
    // Nothing read ahead of the caller: the socket's own buffer is enough.
    { highWaterMark: 0 },
  );
  return new Response(body, {
    headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' },
  });
}

const lineOf = (line: WireArchiveLine) => `${JSON.stringify(line)}\n`;

/** An item of the snapshot as lines, in the caller's terms: a page of rows split into lines of about ARCHIVE_LINE_BYTES. */
function* archiveLines(caller: Namespace, item: StoreArchiveItem): Generator<string> {
  if (item.kind === 'start') {
    yield lineOf(item);
    return;
  }
  const namespaced = NAMESPACED[item.table];
  const outward = (row: TableRow) =>
    namespaced
      ? { ...row, [namespaced.column]: caller.outward(row[namespaced.column] as string | null) }
      : row;
  let rows: TableRow[] = [];
  let bytes = 0;
  for (const row of item.rows) {
    const shown = outward(row);
    // Measured as JSON text: a row of large documents weighs what it sends.
    bytes += JSON.stringify(shown).length;
    rows.push(shown);
    if (bytes < ARCHIVE_LINE_BYTES) continue;
    yield lineOf({ kind: 'rows', table: item.table, rows });
    rows = [];
    bytes = 0;
  }
  if (rows.length > 0) yield lineOf({ kind: 'rows', table: item.table, rows });
}
