import { filter, pipe } from 'graphql-yoga';
import {
  type Builder,
  type DocumentChange,
  type DocumentGuard,
  decodeCursor,
  encodeCursor,
  PorticoError,
  pageSize,
  type RequestContext,
  type StoredDocument,
  type Viewer,
} from '../../src/index.ts';
import leases from '../leases/index.ts';
import users from '../users/index.ts';
import {
  canChangeDocument,
  canRead,
  canSeeDocument,
  canWrite,
  hiddenByOwner,
  readerOwner,
} from './access.ts';
import { type CollectionDefinition, definitions } from './config.ts';
import type { IndexQuery } from './queries.ts';
import * as service from './service.ts';

const collectionsOf = (context: RequestContext) => definitions(context.runtime.settings);

/** The collection, if the viewer may read it; NOT_FOUND, UNAUTHENTICATED or FORBIDDEN otherwise. */
function readable(context: RequestContext, name: string): CollectionDefinition {
  const collection = service.collection(context.runtime, name);
  if (!canRead(context.viewer, collection)) throw denied(context.viewer);
  return collection;
}

function writable(context: RequestContext, name: string): CollectionDefinition {
  const collection = service.collection(context.runtime, name);
  if (!canWrite(context.viewer, collection)) throw denied(context.viewer);
  return collection;
}

const denied = (viewer: Viewer) =>
  viewer.userId
    ? new PorticoError('FORBIDDEN', 'You are not allowed to do this.')
    : new PorticoError('UNAUTHENTICATED', 'Sign in first.');

const cursorKind = (collection: string, index: string | null | undefined) =>
  `doc:${collection}:${index ?? ''}`;

function decodeAfter(collection: string, index: string | null | undefined, after: string | null | undefined) {
  const decoded = decodeCursor(cursorKind(collection, index), after);
  if (decoded === undefined) return null;
  const split = decoded.indexOf(':');
  if (split < 0)
    throw new PorticoError('BAD_USER_INPUT', 'This cursor is not valid here.', { field: 'after' });
  return { position: decoded.slice(0, split), id: decoded.slice(split + 1) };
}

/**
 * Write access to a document as it is (null: new). Another user's document in `owner` mode goes on
 * as missing, so every answer about it is the one a missing id gets (no existence oracle).
 */
const guardFor =
  (context: RequestContext, collection: CollectionDefinition): DocumentGuard =>
  (current) => {
    if (!current || hiddenByOwner(context.viewer, collection, current.ownerId)) return null;
    if (canChangeDocument(context.viewer, collection, current.ownerId)) return current;
    if (!canSeeDocument(context.viewer, collection, current.ownerId)) {
      throw service.documentNotFound(collection.name, current.id);
    }
    throw denied(context.viewer);
  };

/** An edge of a page, its cursor encoded only when asked for: most pages read just the last one. */
class DocumentEdge {
  readonly #kind: string;
  readonly #position: string;
  readonly node: StoredDocument;

  constructor(kind: string, position: string, node: StoredDocument) {
    this.#kind = kind;
    this.#position = position;
    this.node = node;
  }

  get cursor() {
    return encodeCursor(this.#kind, `${this.#position}:${this.node.id}`);
  }
}

/**
 * `putDocument` with an id. A reader of their own documents only (`owner` mode) replaces one of
 * theirs and creates nothing: creating there takes no id, since an id another user holds could
 * be neither taken over nor refused without telling that it exists.
 */
const putGuardFor = (
  context: RequestContext,
  collection: CollectionDefinition,
  id: string,
): DocumentGuard => {
  const guard = guardFor(context, collection);
  const replacesOnly = readerOwner(context.viewer, collection) !== null;
  return (current) => {
    const seen = guard(current);
    if (!seen && replacesOnly) throw service.documentNotFound(collection.name, id);
    return seen;
  };
};

export function registerCollections(builder: Builder) {
  const SortOrder = builder.enumType('SortOrder', { values: ['ASC', 'DESC'] as const });
  const ChangeKind = builder.enumType('DocumentChangeKind', {
    values: ['CREATED', 'UPDATED', 'DELETED'] as const,
  });

  const IndexRef = builder
    .objectRef<{ name: string; fields: string[]; unique: boolean }>('CollectionIndex')
    .implement({
      fields: (t) => ({
        name: t.exposeString('name'),
        fields: t.exposeStringList('fields'),
        unique: t.exposeBoolean('unique'),
      }),
    });
  const CollectionRef = builder.objectRef<CollectionDefinition>('Collection').implement({
    fields: (t) => ({
      name: t.exposeString('name'),
      indexes: t.field({ type: [IndexRef], resolve: (collection) => [...collection.indexes.values()] }),
      writable: t.boolean({
        description: 'True when the viewer may write to it.',
        resolve: (collection, _args, { viewer }) => canWrite(viewer, collection),
      }),
      schema: t.field({
        type: 'JSONObject',
        nullable: true,
        description: 'The JSON Schema its documents must match, null when it has none.',
        resolve: (collection) => collection.schema ?? null,
      }),
    }),
  });

  const DocumentRef = builder.objectRef<StoredDocument>('Document').implement({
    fields: (t) => ({
      id: t.exposeID('id', { description: 'Unique within its collection.' }),
      collection: t.exposeString('collection'),
      data: t.field({ type: 'JSONObject', resolve: (document) => document.data }),
      version: t.exposeInt('version', { description: 'Starts at 1 and grows by 1 with every write.' }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
      owner: t.field({
        type: users.api.UserRef,
        nullable: true,
        resolve: (document, _args, { db, viewer }) =>
          document.ownerId && (document.ownerId === viewer.userId || viewer.scopes.has('admin'))
            ? users.api.findUser(db.system, document.ownerId)
            : null,
      }),
    }),
  });
  const DocumentConnection = builder.connectionObject(
    { type: DocumentRef, name: 'DocumentConnection' },
    { name: 'DocumentEdge' },
  );
  const ChangeRef = builder.objectRef<DocumentChange>('DocumentChange').implement({
    fields: (t) => ({
      kind: t.field({ type: ChangeKind, resolve: (change) => change.kind }),
      collection: t.exposeString('collection'),
      id: t.exposeID('id'),
      version: t.exposeInt('version'),
      document: t.field({
        type: DocumentRef,
        nullable: true,
        description:
          'Null when deleted. The written version on the instance that wrote it; on other instances, the document as it is when the change arrives.',
        resolve: (change, _args, { runtime }) => service.changedDocument(runtime, change),
      }),
    }),
  });

  const IndexQueryInput = builder.inputType('IndexQuery', {
    description:
      "A query on one declared index: equality on a prefix of the index's fields,\nthen at most one range on the field that follows that prefix.",
    fields: (t) => ({
      eq: t.field({ type: 'JSONObject' }),
      gt: t.field({ type: 'JSON' }),
      gte: t.field({ type: 'JSON' }),
      lt: t.field({ type: 'JSON' }),
      lte: t.field({ type: 'JSON' }),
    }),
  });

  const queryArgs = (t: Parameters<Parameters<typeof builder.queryFields>[0]>[0]) => ({
    collection: t.arg.string({ required: true }),
    index: t.arg.string(),
    where: t.arg({ type: IndexQueryInput }),
  });

  builder.queryFields((t) => ({
    collections: t.field({
      type: [CollectionRef],
      description: 'The collections the viewer may read.',
      authScopes: { public: true },
      resolve: (_root, _args, context) =>
        [...collectionsOf(context).values()].filter((c) => canRead(context.viewer, c)),
    }),
    document: t.field({
      type: DocumentRef,
      nullable: true,
      authScopes: { public: true },
      args: { collection: t.arg.string({ required: true }), id: t.arg.id({ required: true }) },
      resolve: async (_root, args, context) => {
        const collection = readable(context, args.collection);
        const document = await service.get(context.runtime, collection.name, String(args.id));
        return document && canSeeDocument(context.viewer, collection, document.ownerId) ? document : null;
      },
    }),
    documents: t.field({
      type: DocumentConnection,
      description: 'Pages through one declared index; without `index`, in id order.',
      authScopes: { public: true },
      args: {
        ...queryArgs(t),
        order: t.arg({ type: SortOrder, defaultValue: 'ASC' }),
        first: t.arg.int(),
        after: t.arg.string(),
      },
      resolve: async (_root, args, context) => {
        const collection = readable(context, args.collection);
        const after = decodeAfter(collection.name, args.index, args.after);
        const page = await service.query(context.runtime, collection.name, {
          index: args.index,
          where: args.where as IndexQuery | null,
          order: args.order ?? 'ASC',
          first: pageSize(args.first),
          after,
          ownerId: readerOwner(context.viewer, collection),
        });
        const kind = cursorKind(collection.name, args.index);
        const edges = page.items.map(({ document, position }) => new DocumentEdge(kind, position, document));
        return {
          edges,
          pageInfo: {
            hasNextPage: page.hasNextPage,
            hasPreviousPage: after !== null,
            startCursor: edges[0]?.cursor ?? null,
            endCursor: edges.at(-1)?.cursor ?? null,
          },
        };
      },
    }),
    countDocuments: t.field({
      type: 'SafeInt',
      description: 'Counts the documents matching a query on a declared index.',
      authScopes: { public: true },
      args: queryArgs(t),
      resolve: (_root, args, context) => {
        const collection = readable(context, args.collection);
        return service.count(context.runtime, collection.name, {
          index: args.index,
          where: args.where as IndexQuery | null,
          ownerId: readerOwner(context.viewer, collection),
        });
      },
    }),
  }));

  builder.mutationFields((t) => ({
    putDocument: t.field({
      type: DocumentRef,
      description: 'Creates (no id) or replaces a document.',
      authScopes: { public: true },
      args: {
        collection: t.arg.string({ required: true }),
        id: t.arg.id(),
        data: t.arg({ type: 'JSONObject', required: true }),
        expectedVersion: t.arg.int(),
        fence: t.arg({ type: leases.api.FenceInput }),
      },
      resolve: async (_root, args, context) => {
        const collection = writable(context, args.collection);
        const id = args.id === null || args.id === undefined ? null : String(args.id);
        return service.put(
          context.runtime,
          collection.name,
          {
            id,
            data: args.data,
            ownerId: context.viewer.userId,
            expectedVersion: args.expectedVersion,
            fence: args.fence,
          },
          id === null ? guardFor(context, collection) : putGuardFor(context, collection, id),
        );
      },
    }),
    patchDocument: t.field({
      type: DocumentRef,
      description: 'Applies a JSON Merge Patch (RFC 7396).',
      authScopes: { public: true },
      args: {
        collection: t.arg.string({ required: true }),
        id: t.arg.id({ required: true }),
        patch: t.arg({ type: 'JSONObject', required: true }),
        expectedVersion: t.arg.int(),
        fence: t.arg({ type: leases.api.FenceInput }),
      },
      resolve: async (_root, args, context) => {
        const collection = writable(context, args.collection);
        return service.patch(
          context.runtime,
          collection.name,
          {
            id: String(args.id),
            patch: args.patch,
            expectedVersion: args.expectedVersion,
            fence: args.fence,
          },
          guardFor(context, collection),
        );
      },
    }),
    deleteDocument: t.boolean({
      authScopes: { public: true },
      args: {
        collection: t.arg.string({ required: true }),
        id: t.arg.id({ required: true }),
        expectedVersion: t.arg.int(),
        fence: t.arg({ type: leases.api.FenceInput }),
      },
      resolve: async (_root, args, context) => {
        const collection = writable(context, args.collection);
        return service.remove(
          context.runtime,
          collection.name,
          { id: String(args.id), expectedVersion: args.expectedVersion, fence: args.fence },
          guardFor(context, collection),
        );
      },
    }),
  }));

  builder.subscriptionField('documentChanged', (t) =>
    t.field({
      type: ChangeRef,
      description: 'Changes to a collection the viewer may read, or to one document of it.',
      authScopes: { public: true },
      args: { collection: t.arg.string({ required: true }), id: t.arg.id() },
      subscribe: async (_root, args, context) => {
        const collection = readable(context, args.collection);
        const changes = changesOf(
          context,
          collection,
          args.id === null || args.id === undefined ? null : String(args.id),
        );
        // Live once other instances' changes reach this one: the client may write right after.
        await context.runtime.store.events.ready();
        return changes;
      },
      resolve: (change) => change,
    }),
  );
}

const changesOf = (context: RequestContext, collection: CollectionDefinition, id: string | null) =>
  pipe(
    context.runtime.store.events.subscribe('document.changed'),
    filter(
      (change) =>
        change.collection === collection.name &&
        (id === null || change.id === id) &&
        canSeeDocument(context.viewer, collection, change.ownerId),
    ),
  );
