import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const PUT = `mutation ($collection: String!, $id: ID, $data: JSONObject!, $expectedVersion: Int) {
  putDocument(collection: $collection, id: $id, data: $data, expectedVersion: $expectedVersion) { id version data owner { email } }
}`;
const PATCH = `mutation ($id: ID!, $patch: JSONObject!, $expectedVersion: Int) {
  patchDocument(collection: "notes", id: $id, patch: $patch, expectedVersion: $expectedVersion) { id version data }
}`;
const QUERY = `query ($collection: String!, $index: String, $where: IndexQuery, $order: SortOrder, $first: Int, $after: String) {
  documents(collection: $collection, index: $index, where: $where, order: $order, first: $first, after: $after) {
    edges { cursor node { id data } }
    pageInfo { hasNextPage endCursor }
  }
  countDocuments(collection: $collection, index: $index, where: $where)
}`;

interface Put {
  putDocument: {
    id: string;
    version: number;
    data: Record<string, unknown>;
    owner: { email: string } | null;
  };
}
interface Page {
  documents: {
    edges: { cursor: string; node: { id: string; data: Record<string, unknown> } }[];
    pageInfo: { hasNextPage: boolean; endCursor: string };
  };
  countDocuments: number;
}

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

describe.each(backends)('collections on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let writer: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(portico);
    writer = portico.client();
    await writer.gql(
      'mutation { signUp(input: { email: "writer@example.com", password: "a long enough passphrase" }) { user { id } } }',
    );
  });
  afterAll(() => portico?.close());

  const put = async (client: TestClient, collection: string, data: Record<string, unknown>, id?: string) => {
    const result = await client.gql<Put>(PUT, { collection, data, id });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!.putDocument;
  };
  const query = async (client: TestClient, variables: Record<string, unknown>) => {
    const result = await client.gql<Page>(QUERY, { collection: 'notes', ...variables });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!;
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
    const patched = await writer.gql<{ patchDocument: { version: number; data: Record<string, unknown> } }>(
      PATCH,
      {
        id: created.id,
        patch: { extra: null, status: 'done' },
        expectedVersion: 2,
      },
    );
    expect(patched.data?.patchDocument).toEqual({
      id: created.id,
      version: 3,
      data: { title: 'First!', status: 'done', priority: 2 },
    });
    const stale = await writer.gql(PATCH, { id: created.id, patch: { status: 'x' }, expectedVersion: 2 });
    expect(codeOf(stale)).toBe('CONFLICT');
    const deleted = await writer.gql<{ deleteDocument: boolean }>(
      'mutation ($id: ID!) { deleteDocument(collection: "notes", id: $id, expectedVersion: 3) }',
      { id: created.id },
    );
    expect(deleted.data?.deleteDocument).toBe(true);
    const gone = await writer.gql<{ document: null }>(
      'query ($id: ID!) { document(collection: "notes", id: $id) { id } }',
      {
        id: created.id,
      },
    );
    expect(gone.data?.document).toBeNull();
  });

  it('refuses a duplicate unique key, schema violations with their paths, and documents over 1 MiB', async () => {
    await put(writer, 'notes', { title: 'A', slug: 'same' });
    const duplicate = await writer.gql(PUT, { collection: 'notes', data: { title: 'B', slug: 'same' } });
    expect(codeOf(duplicate)).toBe('CONFLICT');
    expect((await query(writer, { index: 'bySlug', where: { eq: { slug: 'same' } } })).countDocuments).toBe(
      1,
    );

    const invalid = await writer.gql(PUT, {
      collection: 'notes',
      data: { title: 'x'.repeat(101), priority: 'high' },
    });
    expect(codeOf(invalid)).toBe('VALIDATION_FAILED');
    const errors = (invalid.errors?.[0]?.extensions?.errors ?? []) as { path: string }[];
    const paths = errors.map((error) => error.path).sort();
    expect(paths).toEqual(['/priority', '/title']);
    const missing = await writer.gql(PUT, { collection: 'notes', data: { body: 'no title' } });
    expect(codeOf(missing)).toBe('VALIDATION_FAILED');

    const padding = (size: number) => 'x'.repeat(size - JSON.stringify({ title: 'big', pad: '' }).length);
    const atLimit = await writer.gql<Put>(PUT, {
      collection: 'board',
      data: { title: 'big', pad: padding(1024 * 1024) },
    });
    expect(atLimit.errors).toBeUndefined();
    const over = await writer.gql(PUT, {
      collection: 'board',
      data: { title: 'big', pad: padding(1024 * 1024 + 1) },
    });
    expect(codeOf(over)).toBe('PAYLOAD_TOO_LARGE');
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
    let after: string | undefined;
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
    const undeclared = await writer.gql(QUERY, {
      collection: 'notes',
      index: 'byTitle',
      where: { eq: { title: 'x' } },
    });
    expect(codeOf(undeclared)).toBe('INDEX_NOT_DECLARED');
    expect(undeclared.errors?.[0]?.message).toContain('byStatus (status, priority)');
    expect(undeclared.errors?.[0]?.message).toContain('collections.notes.indexes.byTitle');
    const wrongField = await writer.gql(QUERY, {
      collection: 'notes',
      index: 'byStatus',
      where: { eq: { priority: 1 } },
    });
    expect(codeOf(wrongField)).toBe('BAD_USER_INPUT');
    const noField = await writer.gql(QUERY, {
      collection: 'notes',
      index: 'bySlug',
      where: { eq: { slug: 'a' }, gt: 1 },
    });
    expect(codeOf(noField)).toBe('BAD_USER_INPUT');
    const twoLower = await writer.gql(QUERY, {
      collection: 'notes',
      index: 'byStatus',
      where: { gt: 'a', gte: 'b' },
    });
    expect(codeOf(twoLower)).toBe('BAD_USER_INPUT');
    const unknownOperator = await writer.gql(QUERY, {
      collection: 'notes',
      index: 'byStatus',
      where: { ne: 'a' },
    });
    expect(codeOf(unknownOperator)).toBe('BAD_USER_INPUT');
    const withoutIndex = await writer.gql(QUERY, { collection: 'notes', where: { eq: { status: 'todo' } } });
    expect(codeOf(withoutIndex)).toBe('BAD_USER_INPUT');
    const foreignCursor = await writer.gql(QUERY, { collection: 'notes', index: 'bySlug', after: 'garbage' });
    expect(codeOf(foreignCursor)).toBe('BAD_USER_INPUT');
  });

  it('applies the access rules: scopes by default, owner, public', async () => {
    const anonymous = portico.client();
    expect(codeOf(await anonymous.gql(QUERY, { collection: 'notes' }))).toBe('UNAUTHENTICATED');
    const reader = portico.client();
    const signUp = await reader.gql<{ signUp: { user: { id: string } } }>(
      'mutation { signUp(input: { email: "reader@example.com", password: "a long enough passphrase" }) { user { id } } }',
    );
    await admin.gql('mutation ($id: ID!) { setUserRoles(userId: $id, roles: ["reader"]) { id } }', {
      id: signUp.data!.signUp.user.id,
    });
    await reader.gql(
      'mutation { logIn(email: "reader@example.com", password: "a long enough passphrase") { user { id } } }',
    );
    expect((await reader.gql<Page>(QUERY, { collection: 'notes' })).errors).toBeUndefined();
    expect(codeOf(await reader.gql(PUT, { collection: 'notes', data: { title: 'nope' } }))).toBe('FORBIDDEN');

    const collections = await reader.gql<{ collections: { name: string; writable: boolean }[] }>(
      '{ collections { name writable } }',
    );
    expect(collections.data?.collections).toEqual([
      { name: 'notes', writable: false },
      { name: 'diary', writable: true },
      { name: 'board', writable: true },
    ]);
    const publicView = await anonymous.gql<{ collections: { name: string }[] }>('{ collections { name } }');
    expect(publicView.data?.collections.map((c) => c.name)).toEqual(['board']);

    const mine = await put(writer, 'diary', { day: '2026-11-21', text: 'secret' });
    await put(reader, 'diary', { day: '2026-11-21', text: 'reader' });
    const diary = await reader.gql<Page>(QUERY, {
      collection: 'diary',
      index: 'byDay',
      where: { eq: { day: '2026-11-21' } },
    });
    expect(diary.data?.documents.edges.map((edge) => edge.node.data.text)).toEqual(['reader']);
    expect(diary.data?.countDocuments).toBe(1);
    const peek = await reader.gql<{ document: null }>(
      'query ($id: ID!) { document(collection: "diary", id: $id) { id } }',
      { id: mine.id },
    );
    expect(peek.data?.document).toBeNull();
    const overwrite = await reader.gql(PUT, { collection: 'diary', id: mine.id, data: { day: 'x' } });
    expect(codeOf(overwrite)).toBe('NOT_FOUND');
    const all = await admin.gql<Page>(QUERY, {
      collection: 'diary',
      index: 'byDay',
      where: { eq: { day: '2026-11-21' } },
    });
    expect(all.data?.countDocuments).toBe(2);
  });
});
