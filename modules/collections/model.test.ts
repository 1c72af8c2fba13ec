import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CountDocumentsDocument,
  DeleteDocumentDocument,
  DocumentsDocument,
  type IndexQuery,
  PutDocumentDocument,
} from '../../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

/**
 * Property: every page and count of an index query equals what a plain in-memory
 * model computes. The model orders values by its own rules (type rank, numbers
 * numerically, strings by UTF-8 bytes), independent of the key encoding under test.
 */

type Value = null | boolean | number | string;
const rank = (value: Value) =>
  value === null ? 0 : value === false ? 1 : value === true ? 2 : typeof value === 'number' ? 3 : 4;

function compareValues(a: Value, b: Value): number {
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return 0;
}

interface Doc {
  id: string;
  data: { a?: Value; b?: Value };
}
interface Query {
  eqA?: Value;
  lower?: { op: 'gt' | 'gte'; value: Value };
  upper?: { op: 'lt' | 'lte'; value: Value };
  order: 'ASC' | 'DESC';
  pageSize: number;
}

const field = (doc: Doc, name: 'a' | 'b'): Value => (doc.data[name] === undefined ? null : doc.data[name]!);

function model(docs: Doc[], query: Query): Doc[] {
  const rangeField = query.eqA === undefined ? 'a' : 'b';
  const matches = docs.filter((doc) => {
    if (query.eqA !== undefined && compareValues(field(doc, 'a'), query.eqA) !== 0) return false;
    const value = field(doc, rangeField);
    if (query.lower) {
      const c = compareValues(value, query.lower.value);
      if (query.lower.op === 'gt' ? c <= 0 : c < 0) return false;
    }
    if (query.upper) {
      const c = compareValues(value, query.upper.value);
      if (query.upper.op === 'lt' ? c >= 0 : c > 0) return false;
    }
    return true;
  });
  const sorted = matches.sort(
    (x, y) =>
      compareValues(field(x, 'a'), field(y, 'a')) ||
      compareValues(field(x, 'b'), field(y, 'b')) ||
      Buffer.compare(Buffer.from(x.id), Buffer.from(y.id)),
  );
  return query.order === 'DESC' ? sorted.reverse() : sorted;
}

const value = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -5, max: 5 }),
  fc.double({ min: -10, max: 10, noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom('', 'a', 'ab', 'b', 'B', 'é', '\u0000', 'a\u0000', '😀'),
);
const maybe = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
const documents = fc.uniqueArray(
  fc.record({
    id: fc.stringMatching(/^[a-z0-9]{1,6}$/),
    data: fc.record({ a: maybe(value), b: maybe(value) }),
  }),
  { selector: (doc) => doc.id, minLength: 1, maxLength: 30 },
);
const query = fc.record({
  eqA: maybe(value),
  lower: maybe(fc.record({ op: fc.constantFrom('gt' as const, 'gte' as const), value })),
  upper: maybe(fc.record({ op: fc.constantFrom('lt' as const, 'lte' as const), value })),
  order: fc.constantFrom('ASC' as const, 'DESC' as const),
  pageSize: fc.integer({ min: 1, max: 7 }),
});

const COLLECTIONS = 8;

describe.each(backends)('index queries against an in-memory model on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let run = 0;

  beforeAll(async () => {
    const collections = Object.fromEntries(
      Array.from({ length: COLLECTIONS }, (_, i) => [`m${i}`, { indexes: { byAB: ['a', 'b'] } }]),
    );
    portico = await startGateway({ backend, listen: false, config: { collections } });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('returns every page and count the model does', async () => {
    await fc.assert(
      fc.asyncProperty(documents, fc.array(query, { minLength: 1, maxLength: 4 }), async (docs, queries) => {
        const collection = `m${run++ % COLLECTIONS}`;
        // Each run starts from an empty collection.
        const existing = await admin.gql(DocumentsDocument, { collection, first: 100 });
        for (const edge of existing.data!.documents.edges) {
          await admin.gql(DeleteDocumentDocument, { collection, id: edge.node.id });
        }
        for (const doc of docs) {
          const put = await admin.gql(PutDocumentDocument, { collection, id: doc.id, data: doc.data });
          if (put.errors) throw new Error(JSON.stringify(put.errors));
        }
        for (const q of queries) {
          const where: IndexQuery = {};
          if (q.eqA !== undefined) where.eq = { a: q.eqA };
          if (q.lower) where[q.lower.op] = q.lower.value;
          if (q.upper) where[q.upper.op] = q.upper.value;
          const expected = model(docs, q).map((doc) => doc.id);
          const seen: string[] = [];
          let after: string | null | undefined;
          const counted = await admin.gql(CountDocumentsDocument, { collection, index: 'byAB', where });
          if (counted.errors) throw new Error(JSON.stringify(counted.errors));
          for (let page = 0; page < 40; page++) {
            const result = await admin.gql(DocumentsDocument, {
              collection,
              index: 'byAB',
              where,
              order: q.order,
              first: q.pageSize,
              after,
            });
            if (result.errors) throw new Error(JSON.stringify(result.errors));
            seen.push(...result.data!.documents.edges.map((edge) => edge.node.id));
            if (!result.data!.documents.pageInfo.hasNextPage) break;
            after = result.data!.documents.pageInfo.endCursor;
          }
          expect(seen).toEqual(expected);
          expect(counted.data!.countDocuments).toBe(expected.length);
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});
