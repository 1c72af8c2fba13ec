import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CollectionsDocument,
  ConsoleCollectionsDocument,
  CountDocumentsDocument,
  DeleteDocumentDocument,
  DocumentDocument,
  DocumentsDocument,
  type DocumentsQueryVariables,
  type IndexQuery,
  LogInDocument,
  PatchDocumentDocument,
  PutDocumentDocument,
  SetUserRolesDocument,
  SignUpDocument,
} from '../../client/index.ts';
import {
  bootstrapAdmin,
  codeOf,
  startGateway,
  storeKinds,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const CONFIG = {
  signup: 'open',
  roles: { writer: ['notes:read', 'notes:write'], reader: ['notes:read'] },
  defaultRoles: ['writer'],
  rateLimits: { signUps: 100 },
  collections: {
    notes: {
      indexes: {
        byStatus: { fields: ['status', 'priority'] },
        bySlug: { fields: ['slug'], unique: true },
        byTag: ['meta.tag'],
      },
      schema: {
        type: 'object',
        properties: { title: { type: 'string', maxLength: 100 }, priority: { type: 'number' } },
        required: ['title'],
      },
    },
    diary: { indexes: { byDay: ['day'] }, read: 'owner', write: 'owner' },
    board: { read: 'public', write: 'authenticated' },
  },
};

describe.each(storeKinds)('collections on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let writer: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(portico);
    writer = portico.client();
    await writer.gql(SignUpDocument, {
      input: { email: 'writer@example.com', password: 'a long enough passphrase' },
    });
  });
  afterAll(() => portico?.close());

  const put = async (client: TestClient, collection: string, data: Record<string, unknown>, id?: string) => {
    const result = await client.gql(PutDocumentDocument, { collection, data, id });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!.putDocument;
  };
  /** A page of a query (on notes unless it names a collection) and the count of all it matches. */
  const query = async (client: TestClient, variables: Partial<DocumentsQueryVariables>) => {
    const { collection = 'notes', index, where } = variables;
    const [page, count] = await Promise.all([
      client.gql(DocumentsDocument, { ...variables, collection }),
      client.gql(CountDocumentsDocument, { collection, index, where }),
    ]);
    if (page.errors || count.errors) throw new Error(JSON.stringify([page.errors, count.errors]));
    return { documents: page.data!.documents, countDocuments: count.data!.countDocuments };
  };

  it('creates with a generated id at version 1, replaces, patches (null removes) and deletes', async () => {
    const created = await put(writer, 'notes', { title: 'First', status: 'open', priority: 1, extra: 'x' });
    expect(created).toMatchObject({ version: 1, owner: { email: 'writer@example.com' } });
    const replaced = await put(
      writer,
      'notes',
      { title: 'First!', status: 'open', priority: 2, extra: 'x' },
      created.id,
    );
    expect(replaced.version).toBe(2);
    const patched = await writer.gql(PatchDocumentDocument, {
      collection: 'notes',
      id: created.id,
      patch: { extra: null, status: 'done' },
      expectedVersion: 2,
    });
    expect(patched.data?.patchDocument).toMatchObject({ id: created.id, version: 3 });
    expect(patched.data?.patchDocument.data).toEqual({ title: 'First!', status: 'done', priority: 2 });
    const stale = await writer.gql(PatchDocumentDocument, {
      collection: 'notes',
      id: created.id,
      patch: { status: 'x' },
      expectedVersion: 2,
    });
    expect(codeOf(stale)).toBe('CONFLICT');
    const deleted = await writer.gql(DeleteDocumentDocument, {
      collection: 'notes',
      id: created.id,
      expectedVersion: 3,
    });
    expect(deleted.data?.deleteDocument).toBe(true);
    const gone = await writer.gql(DocumentDocument, { collection: 'notes', id: created.id });
    expect(gone.data?.document).toBeNull();
  });

  it('takes concurrent replaces of one document in turn: none refused, none lost, its index follows the last', async () => {
    const { id } = await put(writer, 'notes', { title: 'Raced', status: 'race', priority: 0 });
    const writes = await Promise.all(
      Array.from({ length: 20 }, (_, priority) =>
        writer.gql(PutDocumentDocument, {
          collection: 'notes',
          id,
          data: { title: 'Raced', status: 'race', priority: priority + 1 },
        }),
      ),
    );
    expect(writes.map((write) => write.errors)).toEqual(writes.map(() => undefined));
    const versions = writes.map((write) => write.data!.putDocument.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, at) => at + 2));
    const final = (await writer.gql(DocumentDocument, { collection: 'notes', id })).data!.document!;
    expect(final.version).toBe(21);
    // The index holds exactly one entry for it, with the data that won.
    const indexed = await query(writer, { index: 'byStatus', where: { eq: { status: 'race' } } });
    expect(indexed.countDocuments).toBe(1);
    expect(indexed.documents.edges.map((edge) => edge.node.data)).toEqual([final.data]);
  });

  it('refuses a duplicate unique key, schema violations with their paths, and documents over 1 MiB', async () => {
    await put(writer, 'notes', { title: 'A', slug: 'same' });
    const duplicate = await writer.gql(PutDocumentDocument, {
      collection: 'notes',
      data: { title: 'B', slug: 'same' },
    });
    expect(codeOf(duplicate)).toBe('CONFLICT');
    expect((await query(writer, { index: 'bySlug', where: { eq: { slug: 'same' } } })).countDocuments).toBe(
      1,
    );

    const invalid = await writer.gql(PutDocumentDocument, {
      collection: 'notes',
      data: { title: 'x'.repeat(101), priority: 'high' },
    });
    expect(codeOf(invalid)).toBe('VALIDATION_FAILED');
    const errors = (invalid.errors?.[0]?.extensions?.errors ?? []) as { path: string }[];
    const paths = errors.map((error) => error.path).sort();
    expect(paths).toEqual(['/priority', '/title']);
    const missing = await writer.gql(PutDocumentDocument, {
      collection: 'notes',
      data: { body: 'no title' },
    });
    expect(codeOf(missing)).toBe('VALIDATION_FAILED');

    const padding = (size: number) => 'x'.repeat(size - JSON.stringify({ title: 'big', pad: '' }).length);
    const atLimit = await writer.gql(PutDocumentDocument, {
      collection: 'board',
      data: { title: 'big', pad: padding(1024 * 1024) },
    });
    expect(atLimit.errors).toBeUndefined();
    const over = await writer.gql(PutDocumentDocument, {
      collection: 'board',
      data: { title: 'big', pad: padding(1024 * 1024 + 1) },
    });
    expect(codeOf(over)).toBe('PAYLOAD_TOO_LARGE');
  });

  it('lists each collection with its JSON Schema, null when it has none', async () => {
    const listed = await admin.gql(ConsoleCollectionsDocument);
    expect(listed.errors).toBeUndefined();
    expect(listed.data?.collections.map(({ name, schema }) => ({ name, schema }))).toEqual([
      { name: 'notes', schema: CONFIG.collections.notes.schema },
      { name: 'diary', schema: null },
      { name: 'board', schema: null },
    ]);
    // Like the rest of the list, a schema is shown only to those who may read the collection.
    const anonymous = await portico.client().gql(ConsoleCollectionsDocument);
    expect(anonymous.data?.collections).toEqual([
      { name: 'board', writable: false, indexes: [], schema: null },
    ]);
  });

  it('queries an index by equality prefix and range, both orders, paging without gaps or duplicates', async () => {
    for (let priority = 1; priority <= 6; priority++) {
      await put(writer, 'notes', {
        title: `todo ${priority}`,
        status: 'todo',
        priority,
        meta: { tag: priority % 2 ? 'odd' : 'even' },
      });
    }
    await put(writer, 'notes', { title: 'other', status: 'later', priority: 3 });
    const prefix = await query(writer, { index: 'byStatus', where: { eq: { status: 'todo' } } });
    expect(prefix.documents.edges.map((edge) => edge.node.data.priority)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(prefix.countDocuments).toBe(6);

    const range = await query(writer, {
      index: 'byStatus',
      where: { eq: { status: 'todo' }, gt: 2, lte: 5 },
      order: 'DESC',
    });
    expect(range.documents.edges.map((edge) => edge.node.data.priority)).toEqual([5, 4, 3]);
    expect(range.countDocuments).toBe(3);
    const nested = await query(writer, { index: 'byTag', where: { eq: { 'meta.tag': 'odd' } } });
    expect(nested.countDocuments).toBe(3);

    // Page 2 at a time while new documents arrive: every original one exactly once, in order.
    const seen: number[] = [];
    let after: string | null | undefined;
    for (let page = 0; page < 10; page++) {
      const result = await query(writer, {
        index: 'byStatus',
        where: { eq: { status: 'todo' } },
        first: 2,
        after,
      });
      seen.push(...result.documents.edges.map((edge) => edge.node.data.priority as number));
      if (!result.documents.pageInfo.hasNextPage) break;
      after = result.documents.pageInfo.endCursor;
      await put(writer, 'notes', { title: 'late', status: 'todo', priority: 0 });
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('explains undeclared indexes and refuses bad ranges', async () => {
    const undeclared = await writer.gql(DocumentsDocument, {
      collection: 'notes',
      index: 'byTitle',
      where: { eq: { title: 'x' } },
    });
    expect(codeOf(undeclared)).toBe('INDEX_NOT_DECLARED');
    expect(undeclared.errors?.[0]?.message).toContain('byStatus (status, priority)');
    expect(undeclared.errors?.[0]?.message).toContain('collections.notes.indexes.byTitle');
    const wrongField = await writer.gql(DocumentsDocument, {
      collection: 'notes',
      index: 'byStatus',
      where: { eq: { priority: 1 } },
    });
    expect(codeOf(wrongField)).toBe('BAD_USER_INPUT');
    const noField = await writer.gql(DocumentsDocument, {
      collection: 'notes',
      index: 'bySlug',
      where: { eq: { slug: 'a' }, gt: 1 },
    });
    expect(codeOf(noField)).toBe('BAD_USER_INPUT');
    const twoLower = await writer.gql(DocumentsDocument, {
      collection: 'notes',
      index: 'byStatus',
      where: { gt: 'a', gte: 'b' },
    });
    expect(codeOf(twoLower)).toBe('BAD_USER_INPUT');
    const unknownOperator = await writer.gql(DocumentsDocument, {
      collection: 'notes',
      index: 'byStatus',
      where: { ne: 'a' } as IndexQuery,
    });
    expect(codeOf(unknownOperator)).toBe('BAD_USER_INPUT');
    const withoutIndex = await writer.gql(DocumentsDocument, {
      collection: 'notes',
      where: { eq: { status: 'todo' } },
    });
    expect(codeOf(withoutIndex)).toBe('BAD_USER_INPUT');
    const foreignCursor = await writer.gql(DocumentsDocument, {
      collection: 'notes',
      index: 'bySlug',
      after: 'garbage',
    });
    expect(codeOf(foreignCursor)).toBe('BAD_USER_INPUT');
  });

  it('applies the access rules: scopes by default, owner, public', async () => {
    const anonymous = portico.client();
    expect(codeOf(await anonymous.gql(DocumentsDocument, { collection: 'notes' }))).toBe('UNAUTHENTICATED');
    const reader = portico.client();
    const signUp = await reader.gql(SignUpDocument, {
      input: { email: 'reader@example.com', password: 'a long enough passphrase' },
    });
    await admin.gql(SetUserRolesDocument, { userId: signUp.data!.signUp.user.id, roles: ['reader'] });
    await reader.gql(LogInDocument, { email: 'reader@example.com', password: 'a long enough passphrase' });
    expect((await reader.gql(DocumentsDocument, { collection: 'notes' })).errors).toBeUndefined();
    expect((await reader.gql(CountDocumentsDocument, { collection: 'notes' })).errors).toBeUndefined();
    expect(
      codeOf(await reader.gql(PutDocumentDocument, { collection: 'notes', data: { title: 'nope' } })),
    ).toBe('FORBIDDEN');

    const collections = await reader.gql(CollectionsDocument);
    expect(collections.data?.collections.map(({ name, writable }) => ({ name, writable }))).toEqual([
      { name: 'notes', writable: false },
      { name: 'diary', writable: true },
      { name: 'board', writable: true },
    ]);
    const publicView = await anonymous.gql(CollectionsDocument);
    expect(publicView.data?.collections.map((c) => c.name)).toEqual(['board']);

    const mine = await put(writer, 'diary', { day: '2026-11-21', text: 'secret' });
    await put(reader, 'diary', { day: '2026-11-21', text: 'reader' });
    const diary = await query(reader, {
      collection: 'diary',
      index: 'byDay',
      where: { eq: { day: '2026-11-21' } },
    });
    expect(diary.documents.edges.map((edge) => edge.node.data.text)).toEqual(['reader']);
    expect(diary.countDocuments).toBe(1);
    const peek = await reader.gql(DocumentDocument, { collection: 'diary', id: mine.id });
    expect(peek.data?.document).toBeNull();
    const overwrite = await reader.gql(PutDocumentDocument, {
      collection: 'diary',
      id: mine.id,
      data: { day: 'x' },
    });
    expect(codeOf(overwrite)).toBe('NOT_FOUND');
    const all = await query(admin, {
      collection: 'diary',
      index: 'byDay',
      where: { eq: { day: '2026-11-21' } },
    });
    expect(all.countDocuments).toBe(2);
  });
});
