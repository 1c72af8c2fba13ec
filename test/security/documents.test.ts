import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CountDocumentsDocument,
  DeleteDocumentDocument,
  DocumentChangedDocument,
  DocumentDocument,
  type IndexQuery,
  PatchDocumentDocument,
  PutDocumentDocument,
  SignUpDocument,
} from '../../client/index.ts';
import type { JsonObject } from '../../modules/collections/json.ts';
import { mergePatch } from '../../modules/collections/patch.ts';
import {
  backends,
  bootstrapAdmin,
  collect,
  connectSse,
  eventually,
  type GraphQLResponse,
  type Operation,
  queryText,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../harness.ts';
import { errorLines, expectNoServerError, expectRefusal } from './answers.ts';

const CONFIG = {
  signup: 'open',
  rateLimits: { signUps: 100 },
  collections: {
    notes: {
      read: 'authenticated',
      write: 'authenticated',
      indexes: { byKind: ['kind'], byCode: { fields: ['code'], unique: true }, byHidden: ['__proto__.kind'] },
      schema: { type: 'object', required: ['title'], properties: { title: { type: 'string' } } },
    },
    keys: {
      read: 'authenticated',
      write: 'authenticated',
      indexes: {
        byConstructor: ['constructor'],
        byPrototype: ['prototype.x'],
        byToString: ['meta.toString'],
      },
      schema: { type: 'object', properties: { constructor: { type: 'string' } } },
    },
    deep: { read: 'authenticated', write: 'authenticated', indexes: { byTop: ['top'] } },
    sized: {
      read: 'authenticated',
      write: 'authenticated',
      indexes: { byName: { fields: ['name'], unique: true } },
    },
    races: {
      read: 'authenticated',
      write: 'authenticated',
      indexes: { byCode: { fields: ['code'], unique: true } },
    },
    diary: { read: 'owner', write: 'owner', indexes: { byDay: ['day'] } },
  },
};

/** JSON text with an own `__proto__` key: a JS object literal would set the prototype instead. */
const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

/** `levels` objects nested in each other: the document itself is level 1. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 'leaf' };
  for (let level = 1; level < levels; level++) value = { a: value };
  return value;
}

/** The same nesting as JSON text: a JSON.stringify of 10 000 levels would overflow this side's stack. */
const nestedText = (levels: number) =>
  `${'{"a":'.repeat(levels - 1)}{"leaf":"leaf"}${'}'.repeat(levels - 1)}`;

/** A GraphQL request whose variables are given as JSON text. */
async function gqlText(
  client: TestClient,
  operation: Operation,
  variables: string,
): Promise<GraphQLResponse<unknown>> {
  const response = await client.request('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: `{"query":${JSON.stringify(queryText(operation))},"variables":${variables}}`,
  });
  return { ...((await response.json()) as object), status: response.status, headers: response.headers };
}

/** The same nesting written as a GraphQL object literal. */
const nestedLiteral = (levels: number) =>
  `${'{ a: '.repeat(levels - 1)}{ leaf: "leaf" }${' }'.repeat(levels - 1)}`;

describe.each(backends)('document data is JSON and nothing else, on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  async function put(collection: string, data: Record<string, unknown>, id?: string) {
    const result = await admin.gql(PutDocumentDocument, { collection, data, id });
    expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
    return result.data!.putDocument;
  }
  async function get(collection: string, id: string) {
    const result = await admin.gql(DocumentDocument, { collection, id });
    expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
    return result.data!.document;
  }
  async function count(collection: string, index: string | null, where?: IndexQuery) {
    const result = await admin.gql(CountDocumentsDocument, { collection, index, where });
    expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
    return result.data!.countDocuments;
  }
  /** A document as JSON text: key order and own `__proto__` keys included. */
  const textOf = async (collection: string, id: string) => JSON.stringify(await get(collection, id));

  it('merge-patches `__proto__` as an ordinary key: a required key hidden under it is still missing', async () => {
    const note = await put('notes', { title: 'real', kind: 'plain' });
    const before = await textOf('notes', note.id);
    const asVariable = await admin.gql(PatchDocumentDocument, {
      collection: 'notes',
      id: note.id,
      patch: json('{"title": null, "__proto__": {"title": "x"}}'),
    });
    expectRefusal(asVariable, 'VALIDATION_FAILED');
    const asLiteral = await admin.gql(
      'mutation ($id: ID!) { patchDocument(collection: "notes", id: $id, patch: { title: null, __proto__: { title: "x" } }) { version } }',
      { id: note.id },
    );
    expectRefusal(asLiteral, 'VALIDATION_FAILED');
    expect(await textOf('notes', note.id)).toBe(before);
  });

  it('stores and indexes the exact value: no ghost entry, and a unique index still accepts the value nobody holds', async () => {
    const note = await put('notes', { title: 'ghostly', kind: 'real', code: 'held' });
    const patched = await admin.gql(PatchDocumentDocument, {
      collection: 'notes',
      id: note.id,
      patch: json('{"kind": null, "code": null, "__proto__": {"kind": "ghost", "code": "free"}}'),
    });
    expect(patched.errors).toBeUndefined();
    const expected = '{"title":"ghostly","__proto__":{"kind":"ghost","code":"free"}}';
    expect(JSON.stringify(patched.data?.patchDocument.data)).toBe(expected);
    expect(JSON.stringify((await get('notes', note.id))?.data)).toBe(expected);

    expect(await count('notes', 'byKind', { eq: { kind: 'ghost' } })).toBe(0);
    expect(await count('notes', 'byKind', { eq: { kind: 'real' } })).toBe(0);
    expect(await count('notes', 'byCode', { eq: { code: 'free' } })).toBe(0);
    // The key `__proto__` is indexed like any other.
    expect(await count('notes', 'byHidden', { eq: { '__proto__.kind': 'ghost' } })).toBe(1);
    // Nobody holds "free" (nor "held" any more): the unique index takes both.
    await put('notes', { title: 'free', code: 'free' });
    await put('notes', { title: 'held', code: 'held' });
    expect(await count('notes', 'byCode', { eq: { code: 'free' } })).toBe(1);

    // A literal sends the same ordinary key.
    const literal = await admin.gql<{ putDocument: { data: unknown } }>(
      'mutation { putDocument(collection: "notes", data: { title: "lit", __proto__: { kind: "inner" } }) { id data } }',
    );
    expect(JSON.stringify(literal.data?.putDocument.data)).toBe(
      '{"title":"lit","__proto__":{"kind":"inner"}}',
    );
    expect(await count('notes', 'byKind', { eq: { kind: 'inner' } })).toBe(0);
    expect(await count('notes', 'byHidden', { eq: { '__proto__.kind': 'inner' } })).toBe(1);
  });

  it('validates, indexes and patches `constructor`, `prototype` and `toString` like any other key', async () => {
    // Absent, they are missing (indexed as null), not Object's inherited members.
    const plain = await put('keys', { name: 'plain', meta: {} });
    expect(await count('keys', 'byConstructor', { eq: { constructor: null } })).toBe(1);
    expect(await count('keys', 'byToString', { eq: { 'meta.toString': null } })).toBe(1);
    const built = await put('keys', { constructor: 'built', prototype: { x: 1 }, meta: { toString: 's' } });
    expect(await count('keys', 'byConstructor', { eq: { constructor: 'built' } })).toBe(1);
    expect(await count('keys', 'byPrototype', { eq: { 'prototype.x': 1 } })).toBe(1);
    expect(await count('keys', 'byToString', { eq: { 'meta.toString': 's' } })).toBe(1);
    expectRefusal(
      await admin.gql(PutDocumentDocument, { collection: 'keys', data: { constructor: 5 } }),
      'VALIDATION_FAILED',
    );
    const removed = await admin.gql(PatchDocumentDocument, {
      collection: 'keys',
      id: built.id,
      patch: { constructor: null, prototype: { x: null, y: 2 } },
    });
    expect(removed.data?.patchDocument.data).toEqual({ prototype: { y: 2 }, meta: { toString: 's' } });
    expect(await count('keys', 'byConstructor', { eq: { constructor: null } })).toBe(2);
    expect(await count('keys', 'byPrototype', { eq: { 'prototype.x': null } })).toBe(2);
    expect((await get('keys', plain.id))?.version).toBe(1);
  });

  it('keeps U+0000 inside document data, in values, keys and index keys', async () => {
    const data = { title: 'a\u0000b', 'key\u0000': '\u0000', kind: 'k\u0000', nested: ['\u0000\u0000'] };
    const note = await put('notes', data);
    expect(note.data).toEqual(data);
    expect((await get('notes', note.id))?.data).toEqual(data);
    expect(await count('notes', 'byKind', { eq: { kind: 'k\u0000' } })).toBe(1);
    expect(await count('notes', 'byKind', { eq: { kind: 'k' } })).toBe(0);
  });

  it('accepts 64 levels of nesting and refuses 65 and 10 000 with BAD_USER_INPUT, as variables and literals', async () => {
    const documents = await count('deep', null);
    const deepest = await put('deep', nested(64));
    expect(deepest.data).toEqual(nested(64));
    const arrays = await put('deep', { list: JSON.parse(`${'['.repeat(63)}1${']'.repeat(63)}`) });
    expect(arrays.version).toBe(1);
    expectRefusal(
      await admin.gql(PutDocumentDocument, { collection: 'deep', data: nested(65) }),
      'BAD_USER_INPUT',
    );
    expectRefusal(
      await admin.gql(PutDocumentDocument, {
        collection: 'deep',
        data: { list: JSON.parse(`${'['.repeat(64)}1${']'.repeat(64)}`) },
      }),
      'BAD_USER_INPUT',
    );
    expectRefusal(
      await gqlText(admin, PutDocumentDocument, `{"collection":"deep","data":${nestedText(10_000)}}`),
      'BAD_USER_INPUT',
    );

    const literal = (levels: number) =>
      admin.gql(`mutation { putDocument(collection: "deep", data: ${nestedLiteral(levels)}) { id } }`);
    const literal64 = await literal(64);
    expect(literal64.errors).toBeUndefined();
    expectRefusal(await literal(65), 'BAD_USER_INPUT');
    // 10 000 levels are far more tokens than a query may have: refused before parsing completes.
    const huge = await literal(10_000);
    expect(huge.errors?.length).toBeGreaterThan(0);
    expectNoServerError(huge);
    expect(await count('deep', null)).toBe(documents + 3);

    // A patch is JSON too; the document stays as it was.
    const target = await put('deep', { top: 'kept' });
    expectRefusal(
      await admin.gql(PatchDocumentDocument, {
        collection: 'deep',
        id: target.id,
        patch: { inner: nested(64) },
      }),
      'BAD_USER_INPUT',
    );
    expectRefusal(
      await gqlText(
        admin,
        PatchDocumentDocument,
        `{"collection":"deep","id":"${target.id}","patch":${nestedText(10_000)}}`,
      ),
      'BAD_USER_INPUT',
    );
    const untouched = await get('deep', target.id);
    expect(untouched).toMatchObject({ id: target.id, version: 1 });
    expect(untouched?.data).toEqual({ top: 'kept' });
    // And so are the values of a query.
    expectRefusal(
      await gqlText(
        admin,
        CountDocumentsDocument,
        `{"collection":"deep","index":"byTop","where":{"eq":{"top":${nestedText(10_000)}}}}`,
      ),
      'BAD_USER_INPUT',
    );
    expect(errorLines(portico.logs)).toEqual([]);
  });

  it('takes index keys of up to 1024 encoded bytes and refuses longer ones with BAD_USER_INPUT naming the index', async () => {
    // A string key is its tag byte, its UTF-8 bytes (U+0000 as two) and two terminator bytes.
    const fits = ['x'.repeat(1021), `${'€'.repeat(340)}x`, `${'a'.repeat(1019)}\u0000`];
    // Random text as well: PostgreSQL compresses a repetitive key below its B-tree row limit (about 2.7 KB).
    const over = [
      'x'.repeat(1022),
      `${'€'.repeat(340)}xx`,
      `${'a'.repeat(1020)}\u0000`,
      randomBytes(1500).toString('hex'),
    ];
    for (const name of fits) {
      await put('sized', { name });
      expect(await count('sized', 'byName', { eq: { name } })).toBe(1);
    }
    const documents = await count('sized', null);
    for (const name of over) {
      const refused = await admin.gql(PutDocumentDocument, { collection: 'sized', data: { name } });
      expectRefusal(refused, 'BAD_USER_INPUT');
      expect(refused.errors?.[0]?.message).toContain('"byName"');
    }
    expect(await count('sized', null)).toBe(documents);

    const kept = await put('sized', { name: 'short' });
    expectRefusal(
      await admin.gql(PatchDocumentDocument, {
        collection: 'sized',
        id: kept.id,
        patch: { name: 'y'.repeat(1022) },
      }),
      'BAD_USER_INPUT',
    );
    const unchanged = await get('sized', kept.id);
    expect(unchanged).toMatchObject({ id: kept.id, version: 1 });
    expect(unchanged?.data).toEqual({ name: 'short' });
    expect(await count('sized', 'byName', { eq: { name: 'short' } })).toBe(1);
    expect(errorLines(portico.logs)).toEqual([]);
  });

  it('answers CONFLICT to every loser of concurrent writes that collide on a unique index', async () => {
    const writers = 20;
    for (let round = 0; round < 3; round++) {
      const code = `race-${round}`;
      const created = await Promise.all(
        Array.from({ length: writers }, (_, writer) =>
          admin.gql(PutDocumentDocument, { collection: 'races', data: { code, writer } }),
        ),
      );
      for (const result of created) expectNoServerError(result);
      expect(created.filter((result) => !result.errors)).toHaveLength(1);
      for (const loser of created.filter((result) => result.errors))
        expectRefusal(loser as GraphQLResponse<unknown>, 'CONFLICT');
      expect(await count('races', 'byCode', { eq: { code } })).toBe(1);
    }

    // Existing documents patched to the same value at once: one wins, the others stay as they were.
    const existing = await Promise.all(
      Array.from({ length: writers }, (_, writer) => put('races', { code: `own-${writer}` })),
    );
    const patched = await Promise.all(
      existing.map((document) =>
        admin.gql(PatchDocumentDocument, {
          collection: 'races',
          id: document.id,
          patch: { code: 'contested' },
        }),
      ),
    );
    for (const result of patched) expectNoServerError(result);
    expect(patched.filter((result) => !result.errors)).toHaveLength(1);
    for (const loser of patched.filter((result) => result.errors))
      expectRefusal(loser as GraphQLResponse<unknown>, 'CONFLICT');
    expect(await count('races', 'byCode', { eq: { code: 'contested' } })).toBe(1);
    const unchanged = await Promise.all(existing.map((document) => get('races', document.id)));
    expect(unchanged.filter((document) => document?.version === 1)).toHaveLength(writers - 1);

    // Two documents swapping their values at once: CONFLICT, never a 500.
    const [left, right] = [await put('races', { code: 'left' }), await put('races', { code: 'right' })];
    for (let round = 0; round < 4; round++) {
      const [one, other] = await Promise.all([
        admin.gql(PatchDocumentDocument, {
          collection: 'races',
          id: left!.id,
          patch: { code: round % 2 ? 'left' : 'right' },
        }),
        admin.gql(PatchDocumentDocument, {
          collection: 'races',
          id: right!.id,
          patch: { code: round % 2 ? 'right' : 'left' },
        }),
      ]);
      for (const result of [one!, other!]) if (result.errors) expectRefusal(result, 'CONFLICT');
    }
    for (const code of ['left', 'right'])
      expect(await count('races', 'byCode', { eq: { code } })).toBeLessThanOrEqual(1);

    // Creating the same new id at once: each write either lands (a later one replaces) or is CONFLICT.
    const sameId = await Promise.all(
      Array.from({ length: writers }, (_, writer) =>
        admin.gql(PutDocumentDocument, { collection: 'races', id: 'one-id', data: { writer } }),
      ),
    );
    for (const result of sameId) if (result.errors) expectRefusal(result, 'CONFLICT');
    const landed = sameId.filter((result) => !result.errors).length;
    expect(landed).toBeGreaterThanOrEqual(1);
    expect((await get('races', 'one-id'))?.version).toBe(landed);
    expect(errorLines(portico.logs)).toEqual([]);
  });
});

describe.each(backends)('owner collections leak nothing, on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let alice: TestClient;
  let bob: TestClient;

  const signUp = async (email: string) => {
    const client = portico.client();
    const result = await client.gql(SignUpDocument, {
      input: { email, password: 'a long enough passphrase' },
    });
    expect(result.errors).toBeUndefined();
    return client;
  };

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(portico);
    alice = await signUp('alice@example.com');
    bob = await signUp('bob@example.com');
  });
  afterAll(() => portico?.close());

  /** The whole answer, with the id it is about replaced, so answers about two ids compare. */
  const answer = (result: GraphQLResponse<unknown>, id: string) =>
    JSON.stringify({ status: result.status, data: result.data, errors: result.errors }).replaceAll(
      id,
      '<id>',
    );

  it("answers for another user's document exactly as for a missing one, and changes nothing", async () => {
    const created = await alice.gql(PutDocumentDocument, {
      collection: 'diary',
      data: { day: '2026-01-01', text: 'private' },
    });
    const theirs = created.data!.putDocument.id;
    const missing = `${theirs.slice(0, -4)}zzzz`;
    const before = await admin.gql(DocumentDocument, { collection: 'diary', id: theirs });

    const operations: [string, Operation, Record<string, unknown>][] = [
      ['document', DocumentDocument, {}],
      ['putDocument', PutDocumentDocument, { data: { day: 'x' } }],
      ['putDocument (version 0)', PutDocumentDocument, { data: { day: 'x' }, expectedVersion: 0 }],
      ['putDocument (version 1)', PutDocumentDocument, { data: { day: 'x' }, expectedVersion: 1 }],
      ['patchDocument', PatchDocumentDocument, { patch: { day: 'x' } }],
      ['patchDocument (version 1)', PatchDocumentDocument, { patch: { day: 'x' }, expectedVersion: 1 }],
      ['deleteDocument', DeleteDocumentDocument, {}],
      ['deleteDocument (version 1)', DeleteDocumentDocument, { expectedVersion: 1 }],
    ];
    // One request id for both: it is in every error, and would tell the two answers apart.
    const sameId = { 'x-request-id': 'document-probe' };
    for (const [name, operation, variables] of operations) {
      const query = queryText(operation);
      const onTheirs = await bob.gql(query, { collection: 'diary', id: theirs, ...variables }, sameId);
      const onMissing = await bob.gql(query, { collection: 'diary', id: missing, ...variables }, sameId);
      expectNoServerError(onTheirs);
      expect(answer(onTheirs, theirs), name).toBe(answer(onMissing, missing));
    }
    expect(await admin.gql(DocumentDocument, { collection: 'diary', id: theirs })).toMatchObject({
      data: before.data,
    });
    expect((await admin.gql(DocumentDocument, { collection: 'diary', id: missing })).data).toEqual({
      document: null,
    });
    expect(
      (
        await bob.gql(CountDocumentsDocument, {
          collection: 'diary',
          index: 'byDay',
          where: { eq: { day: '2026-01-01' } },
        })
      ).data,
    ).toEqual({ countDocuments: 0 });
  });

  it("delivers no change of another user's document to a watcher of its id, as for a missing id", async () => {
    const diary = { collection: 'diary' };
    const created = await alice.gql(PutDocumentDocument, { ...diary, data: { text: 'watched' } });
    const theirs = created.data!.putDocument.id;
    const own = (await bob.gql(PutDocumentDocument, { ...diary, data: { text: 'mine' } })).data!.putDocument
      .id;
    const sse = connectSse(portico.url, { client: bob });
    const watch = (id: string) =>
      collect(sse.iterate({ query: queryText(DocumentChangedDocument), variables: { ...diary, id } }));
    const onTheirs = watch(theirs);
    const onMissing = watch(`${theirs}-missing`);
    const onOwn = watch(own);
    // Subscribed once the server holds them (as the other subscription tests wait).
    await new Promise((resolve) => setTimeout(resolve, 300));
    await alice.gql(PatchDocumentDocument, { ...diary, id: theirs, patch: { text: 'changed' } });
    await bob.gql(PatchDocumentDocument, { ...diary, id: own, patch: { text: 'changed' } });
    await eventually(() => onOwn.results.length === 1, "the change of bob's own document");
    for (const stream of [onTheirs, onMissing, onOwn]) stream.stop();
    sse.dispose();
    expect(onTheirs.results).toEqual([]);
    expect(onMissing.results).toEqual([]);
    expect(onTheirs.error).toBe(onMissing.error);
  });
});

describe('merge patch on values with `__proto__` keys (negative control)', () => {
  it('keeps `__proto__` an own key where an assignment into `{}` would set the prototype', () => {
    const target = json('{"title": "t", "kind": "k"}');
    const patch = json('{"kind": null, "__proto__": {"kind": "ghost"}}');
    // What the old merge did (`result[key] = value` into a plain object) sets the prototype instead.
    const naive: Record<string, unknown> = { ...target };
    delete naive.kind;
    Reflect.set(naive, '__proto__', Reflect.get(patch, '__proto__'));
    expect(naive.kind).toBe('ghost');
    expect(JSON.stringify(naive)).toBe('{"title":"t"}');

    const merged = mergePatch(target as JsonObject, patch as JsonObject) as JsonObject;
    expect(merged.kind).toBeUndefined();
    expect(Object.hasOwn(merged, '__proto__')).toBe(true);
    expect(JSON.stringify(merged)).toBe('{"title":"t","__proto__":{"kind":"ghost"}}');
  });
});
