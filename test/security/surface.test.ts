import { type DocumentNode, Kind, print } from 'graphql';
import type { Client as WsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as client from '../../client/index.ts';
import { MAX_PAGE_SIZE } from '../../src/pagination.ts';
import { GRAPHQL_LIMITS } from '../../src/plugins/use-operation-limits.ts';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  connectWs,
  type GraphQLResponse,
  startGateway,
  subscribeOverSse,
  type TestClient,
  type TestGateway,
  type WsConnection,
} from '../harness.ts';
import { errorLines, expectNoServerError, expectRefusal } from './answers.ts';

/**
 * Issue 12, item 7: the GraphQL surface in production. Suggestions ("Did you mean") are the
 * schema's names handed to whoever guesses near them; limit violations over graphql-ws must not
 * cost the connection; aliases of `__typename` and `first` given as a variable must count.
 * Several cases sign up users and read blobs, so the file runs on every backend.
 */

const PASSWORD = 'a long enough passphrase';
const CONFIG = {
  signup: 'open',
  rateLimits: { signUps: 1000 },
  collections: { notes: { indexes: { byRank: ['rank'] }, read: 'public' } },
};

type Result = { data?: unknown; errors?: GraphQLResponse['errors'] };

/** One operation over a graphql-ws connection: its results, and the errors it ended with, if any. */
function overWs(ws: WsClient, query: string, variables?: Record<string, unknown>) {
  return new Promise<{ results: Result[]; errors?: Result['errors'] }>((resolve) => {
    const results: Result[] = [];
    ws.subscribe(
      { query, variables },
      {
        next: (result) => void results.push(result as Result),
        error: (error) => resolve({ results, errors: error as Result['errors'] }),
        complete: () => resolve({ results }),
      },
    );
  });
}

/** Every error an operation got over the WebSocket, from an `error` message or in its results. */
const wsErrors = (answer: Awaited<ReturnType<typeof overWs>>) => [
  ...(Array.isArray(answer.errors) ? answer.errors : []),
  ...answer.results.flatMap((result) => result.errors ?? []),
];

/** Requests that a production gateway used to answer with a suggestion of the schema's names. */
const NEAR_MISSES: { name: string; query: string; variables?: Record<string, unknown> }[] = [
  {
    name: 'an enum literal',
    query: '{ documents(collection: "notes", order: ASCC) { edges { cursor } } }',
  },
  {
    name: 'an enum value in variables',
    query: 'query ($o: SortOrder) { documents(collection: "notes", order: $o) { edges { cursor } } }',
    variables: { o: 'ASCC' },
  },
  {
    name: 'an input field in variables',
    query: 'mutation ($input: SignUpInput!) { signUp(input: $input) { user { id } } }',
    variables: { input: { email: 'near-miss@example.com', passwrd: PASSWORD } },
  },
  {
    name: 'an index operator in variables',
    query:
      'query ($w: IndexQuery) { documents(collection: "notes", index: "byRank", where: $w) { edges { cursor } } }',
    variables: { w: { gtee: 1 } },
  },
  {
    name: 'an index operator literal',
    query: '{ documents(collection: "notes", index: "byRank", where: { gtee: 1 }) { edges { cursor } } }',
  },
  { name: 'a field', query: '{ viewr { scopes } }' },
  { name: 'an argument', query: '{ documents(colection: "notes") { edges { cursor } } }' },
  {
    name: 'a type',
    query: 'query ($w: IndexQuerry) { documents(collection: "notes", where: $w) { edges { cursor } } }',
  },
];

const SUGGESTION = /Did you mean/i;
/** The largest `first` of `{ blobs(first: n) { __typename } }` within the cost limit: it costs 3.5 x n. */
const COST_EDGE = Math.floor(GRAPHQL_LIMITS.cost / 3.5);

/** `levels` selections deep: viewer > user > sessions > user > ... > id. */
const deep = (levels: number) => {
  const chain = ['viewer', 'user'];
  while (chain.length < levels - 1) chain.push(chain.length % 2 === 0 ? 'sessions' : 'user');
  return `{ ${chain.reduceRight((inner, field) => `${field} { ${inner} }`, 'id')} }`;
};
const typenameAliases = (n: number) => Array.from({ length: n }, (_, i) => `t${i}: __typename`).join(' ');
const directives = (n: number) =>
  `{ auth { ${Array.from({ length: n }, () => 'signup @skip(if: false)').join(' ')} } }`;

describe.each(backends)('the GraphQL surface in production on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let member: TestClient;
  let serial = 0;

  const signUpMutation = (selection: string) =>
    `mutation ($email: String!) { signUp(input: { email: $email, password: "${PASSWORD}" }) { user { id } } ${selection} }`;
  const nextEmail = () => `surface-${++serial}@example.com`;
  /** Whether an account exists: a refused request must not have created it. */
  const accountExists = async (email: string) =>
    codeOf(await portico.client().gql(client.LogInDocument, { email, password: PASSWORD })) !==
    'INVALID_CREDENTIALS';

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(portico);
    member = portico.client();
    const signedUp = await member.gql(signUpMutation(''), { email: nextEmail() });
    expect(signedUp.errors).toBeUndefined();
  });
  afterAll(() => portico?.close());

  describe('suggestions', () => {
    it.each(NEAR_MISSES)('names no near miss of $name to non-admins', async ({ query, variables }) => {
      for (const client of [portico.client(), member]) {
        const result = await client.gql(query, variables);
        expectRefusal(result, 'BAD_USER_INPUT');
        expect(JSON.stringify(result.errors)).not.toMatch(SUGGESTION);
      }
      // Over the WebSocket and SSE as well: the same plugins see every transport.
      const connection = connectWs(portico.url, { client: member });
      try {
        const answer = await overWs(connection.client, query, variables);
        expect(wsErrors(answer).length).toBeGreaterThan(0);
        expect(JSON.stringify(wsErrors(answer))).not.toMatch(SUGGESTION);
      } finally {
        await connection.client.dispose();
      }
      const sse = JSON.stringify(await (await subscribeOverSse(member, query, variables)).done);
      expect(sse).toMatch(/BAD_USER_INPUT/);
      expect(sse).not.toMatch(SUGGESTION);
      expect(errorLines(portico.logs)).toEqual([]);
    });

    it.each(NEAR_MISSES)(
      'still suggests names to admins for $name (the control)',
      async ({ query, variables }) => {
        const result = await admin.gql(query, variables);
        expectRefusal(result, 'BAD_USER_INPUT');
        expect(JSON.stringify(result.errors)).toMatch(SUGGESTION);
      },
    );
  });

  describe('limits over graphql-ws', () => {
    let connection: WsConnection;
    beforeAll(() => {
      connection = connectWs(portico.url, { client: member });
    });
    afterAll(() => connection?.client.dispose());

    it.each([
      ['depth', deep(11), deep(10)],
      ['aliases', `{ ${typenameAliases(16)} }`, `{ ${typenameAliases(15)} }`],
      ['directives', directives(51), directives(50)],
      // 16 tokens around a list of 1985 strings: 2001 (test/http.test.ts covers the edge).
      [
        'tokens',
        `mutation { setUserRoles(userId: "x", roles: [${'"r", '.repeat(1985)}]) { id } }`,
        '{ auth { signup } }',
      ],
      [
        'cost',
        `{ blobs(first: ${COST_EDGE + 1}) { __typename } }`,
        `{ blobs(first: ${COST_EDGE}) { __typename } }`,
      ],
    ])('answers a %s violation with an error and keeps the connection', async (_limit, over, at) => {
      const refused = await overWs(connection.client, over);
      const errors = wsErrors(refused);
      expect(errors.map((error) => error.extensions?.code)).toEqual(['BAD_USER_INPUT']);
      expect(refused.results.every((result) => result.data === undefined || result.data === null)).toBe(true);
      // The same connection goes on: the query at the limit runs, and so does a plain one.
      const accepted = await overWs(connection.client, at);
      expect(wsErrors(accepted)).toEqual([]);
      expect(accepted.results[0]?.data).toBeTruthy();
      expect((await overWs(connection.client, '{ __typename }')).results).toEqual([
        { data: { __typename: 'Query' } },
      ]);
      expect(connection.closes).toEqual([]);
      expect(errorLines(portico.logs)).toEqual([]);
    });

    it('applies the same limits over SSE', async () => {
      for (const over of [deep(11), `{ ${typenameAliases(16)} }`, directives(51)]) {
        const sse = await subscribeOverSse(member, over);
        const events = await sse.done;
        const codes = events.flatMap(
          (event) => (event.data as Result | null)?.errors?.map((error) => error.extensions?.code) ?? [],
        );
        expect(codes, JSON.stringify(events)).toEqual(['BAD_USER_INPUT']);
      }
    });
  });

  describe('aliases of __typename', () => {
    it('counts them: 16 are refused before anything runs, 15 are accepted', async () => {
      const refusedEmail = nextEmail();
      const refused = await portico.client().gql(signUpMutation(typenameAliases(16)), {
        email: refusedEmail,
      });
      expectRefusal(refused, 'BAD_USER_INPUT');
      expect(refused.data ?? undefined).toBeUndefined();
      expect(await accountExists(refusedEmail)).toBe(false);

      const acceptedEmail = nextEmail();
      const accepted = await portico.client().gql(signUpMutation(typenameAliases(15)), {
        email: acceptedEmail,
      });
      expect(accepted.errors).toBeUndefined();
      expect(await accountExists(acceptedEmail)).toBe(true);
      // Mixed with other aliases the total counts: 14 of __typename and 2 of a field.
      expectRefusal(
        await portico.client().gql(`{ ${typenameAliases(14)} a: auth { signup } b: auth { signup } }`),
        'BAD_USER_INPUT',
      );
    });
  });

  describe('the cost of `first` given as a variable', () => {
    /**
     * Shapes of one query with `first` as a literal and as a variable, and the largest `first`
     * within the cost limit. `blobs { __typename }` costs (2 + 1.5) x first; through a fragment
     * spread it costs 4 + 1.5 x (2 + 1.5 x 3.5 x first).
     */
    const SHAPES = [
      {
        shape: 'a variable',
        literal: (n: number) => `{ blobs(first: ${n}) { __typename } }`,
        variable: (n: number) => ['query ($n: Int) { blobs(first: $n) { __typename } }', { n }] as const,
        edge: COST_EDGE,
      },
      {
        shape: "a variable's default",
        literal: (n: number) => `{ blobs(first: ${n}) { __typename } }`,
        variable: (n: number) => [`query ($n: Int = ${n}) { blobs(first: $n) { __typename } }`, {}] as const,
        edge: COST_EDGE,
      },
      {
        shape: 'a variable inside a fragment',
        literal: (n: number) => `{ ...page } fragment page on Query { blobs(first: ${n}) { __typename } }`,
        variable: (n: number) =>
          [
            'query ($n: Int) { ...page } fragment page on Query { blobs(first: $n) { __typename } }',
            { n },
          ] as const,
        edge: Math.floor((GRAPHQL_LIMITS.cost - 4) / 7.875),
      },
    ];

    it.each(SHAPES)(
      'counts $shape like the literal, at and one past the edge',
      async ({ literal, variable, edge }) => {
        const connection = connectWs(portico.url, { client: member });
        try {
          for (const [n, allowed] of [
            [edge, true],
            [edge + 1, false],
            [2 ** 31 - 1, false],
          ] as const) {
            const [query, variables] = variable(n);
            for (const answer of [await member.gql(literal(n)), await member.gql(query, variables)]) {
              if (allowed) {
                expect(answer.errors, `first: ${n}`).toBeUndefined();
                expect(answer.data).toEqual({ blobs: { __typename: 'BlobConnection' } });
              } else {
                expectRefusal(answer, 'BAD_USER_INPUT');
                expect(answer.data ?? undefined, `first: ${n}`).toBeUndefined();
              }
            }
            const overSocket = await overWs(connection.client, query, variables);
            expect(wsErrors(overSocket).map((error) => error.extensions?.code)).toEqual(
              allowed ? [] : ['BAD_USER_INPUT'],
            );
          }
          expect(connection.closes).toEqual([]);
        } finally {
          await connection.client.dispose();
        }
        expect(errorLines(portico.logs)).toEqual([]);
      },
    );

    it("lets every list operation of the typed client run at the contract's largest page", async () => {
      // A cost limit below what the shipped operations need at `first: 100` would refuse them.
      const lists = Object.entries(client).filter(
        ([name, value]) =>
          name.endsWith('Document') &&
          (value as DocumentNode).definitions?.some(
            (definition) =>
              definition.kind === Kind.OPERATION_DEFINITION &&
              definition.variableDefinitions?.some(({ variable }) => variable.name.value === 'first'),
          ),
      );
      expect(lists.length).toBeGreaterThanOrEqual(7);
      for (const [name, document] of lists) {
        const result = await admin.gql(print(document as DocumentNode), {
          first: MAX_PAGE_SIZE,
          collection: 'notes',
        });
        expect(result.errors, name).toBeUndefined();
      }
    });

    it('leaves other operations of the document and absent variables alone', async () => {
      // The operation that runs has a small `first`; the other one would be refused.
      const two = `query small { blobs(first: 10) { __typename } } query big($n: Int) { blobs(first: $n) { __typename } }`;
      const response = await member.request('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: two, variables: { n: 100_000 }, operationName: 'small' }),
      });
      const result = (await response.json()) as Result;
      expect(result.errors).toBeUndefined();
      // No value: the page size's default, like no argument at all.
      const absent = await member.gql('query ($n: Int) { blobs(first: $n) { __typename } }', {});
      expect(absent.errors).toBeUndefined();
      expectNoServerError({ ...result, status: response.status, headers: response.headers });
    });
  });
});

describe('suggestions in development mode', () => {
  // Development mode is a configuration of the GraphQL layer, not of SQL: one backend shows it.
  let portico: TestGateway;
  beforeAll(async () => {
    portico = await startGateway({ config: CONFIG, env: { NODE_ENV: 'development' } });
  });
  afterAll(() => portico?.close());

  it.each(NEAR_MISSES)('suggests names to anyone for $name (the control)', async ({ query, variables }) => {
    const result = await portico.client().gql(query, variables);
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(JSON.stringify(result.errors)).toMatch(SUGGESTION);
  });
});
