import { MikroORM, raw } from '@mikro-orm/core';
import { SqliteDriver } from '@mikro-orm/sqlite';
import {
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLSchema,
  getNamedType,
  getNullableType,
  isAbstractType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PutDocumentDocument, ResetStoreBackendDocument } from '../../client/index.ts';
import { BoundSqliteDriver, bindStatement } from '../../src/bound-sql.ts';
import type { Database } from '../../src/db.ts';
import { defineModule, selectRows } from '../../src/index.ts';
import { buildSchema } from '../../src/schema.ts';
import {
  backends,
  type GraphQLResponse,
  startGatewayWithAdmin,
  TestClient,
  type TestGateway,
} from '../harness.ts';
import { errorLines, expectNoServerError } from './answers.ts';

/** Text no database keeps as given: U+0000 (PostgreSQL refuses it even bound) and lone surrogates (no UTF-8). */
const UNSTORABLE = { nul: 'a\u0000b', onlyNul: '\u0000', loneHigh: '\ud800', loneLow: 'x\udfffy' };
/** Text every database keeps, which still needs a contract answer wherever it goes. */
const AWKWARD = {
  controls: 'ctl \u0001\u0007\u001b[31m\u007f\u0085\u2028 end',
  quotes: `it's "quoted" \\ ?? $1 -- ;`,
  megabyte: 'm'.repeat(1024 * 1024),
};

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const CONFIG = {
  signup: 'open',
  methods: ['password', 'magic-link', 'device'],
  // The probes repeat failed logins from one address: limits would answer before the database does.
  rateLimits: { accountFailures: 1000, ipFailures: 100_000, signUps: 100_000, loginLinks: 1000 },
  collections: {
    notes: { indexes: { bySlug: { fields: ['slug'], unique: true }, byTag: ['tag'] } },
  },
};

/**
 * Text that reaches SQL past the argument check (JSON is data, kept as given): the backstop for
 * what PostgreSQL refuses, over GraphQL and over a route.
 */
const echo = defineModule({
  name: 'test-echo',
  graphql(builder) {
    builder.queryField('probeEcho', (t) =>
      t.field({
        type: 'JSON',
        authScopes: { public: true },
        args: { value: t.arg({ type: 'JSON', required: true }) },
        resolve: async (_root, { value }, context) =>
          (await selectRows<{ v: unknown }>(context.runtime.db.store!.em.fork(), 'select ? as v', [value]))[0]
            ?.v,
      }),
    );
  },
  setup: () => ({
    routes: [
      {
        method: 'GET',
        path: '/probe-echo',
        handler: async (request, context) => {
          const value = new URL(request.url).searchParams.get('value');
          const [row] = await selectRows<{ v: unknown }>(
            context.runtime.db.store!.em.fork(),
            'select ? as v',
            [value],
          );
          return Response.json(row);
        },
      },
    ],
  }),
});

/** One String or ID place of one root field's arguments, with every other argument valid. */
interface Probe {
  /** e.g. `Mutation.logIn(email)` or `Mutation.signUp(input.email)`. */
  name: string;
  operation: 'query' | 'mutation' | 'subscription';
  /** Login-like fields run anonymously: they would replace the admin's session. */
  anonymous: boolean;
  query: string;
  variables(value: string): Record<string, unknown>;
}

/** Valid values for the arguments not probed, so that the probed one gets as far as it can. */
const FILL: Record<string, unknown> = {
  collection: 'notes',
  email: 'probe@example.com',
  password: 'a long enough passphrase',
  currentPassword: 'a long enough passphrase',
  newPassword: 'another long passphrase',
  method: 'password',
  index: 'bySlug',
  key: 'probe-lease',
  lease: 'probe-lease',
  name: 'probe',
  userCode: 'BCDF-GHJK',
  token: 'probe-token',
};

function fillValue(name: string, type: GraphQLInputType): unknown {
  const nullable = getNullableType(type);
  if (isListType(nullable)) return [];
  if (isInputObjectType(nullable)) {
    const value: Record<string, unknown> = {};
    for (const field of Object.values(nullable.getFields())) {
      if (isNonNullType(field.type)) value[field.name] = fillValue(field.name, field.type);
    }
    return value;
  }
  if (isEnumType(nullable)) return nullable.getValues()[0]!.value;
  switch (nullable.name) {
    case 'String':
    case 'ID':
      return FILL[name] ?? 'probe';
    case 'Int':
    case 'SafeInt':
      return 1;
    case 'Boolean':
      return false;
    case 'DateTime':
      return '2099-01-01T00:00:00.000Z';
    case 'JSON':
    case 'JSONObject':
      return {};
    default:
      throw new Error(`No fill value for ${nullable.name}`);
  }
}

/** Paths to the String and ID places of an argument's type: input objects are followed, JSON is data. */
function textPaths(type: GraphQLInputType): { path: string[]; list: boolean }[] {
  const nullable = getNullableType(type);
  if (isListType(nullable)) return textPaths(nullable.ofType).map((place) => ({ ...place, list: true }));
  if (isInputObjectType(nullable)) {
    return Object.values(nullable.getFields()).flatMap((field) =>
      textPaths(field.type).map(({ path, list }) => ({ path: [field.name, ...path], list })),
    );
  }
  const named = getNamedType(type).name;
  return named === 'String' || named === 'ID' ? [{ path: [], list: false }] : [];
}

/** `base` with `value` at `path` (input object fields), other required fields filled. */
function placed(base: unknown, path: string[], value: unknown, type: GraphQLInputType): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return value;
  const object = getNullableType(type);
  if (!isInputObjectType(object)) throw new Error(`No field ${head} in ${String(type)}`);
  const field = object.getFields()[head]!;
  const current = (base ?? fillValue('', type)) as Record<string, unknown>;
  return { ...current, [head]: placed(current[head], rest, value, field.type) };
}

const LOGIN_FIELDS = new Set(['logIn', 'logInWith', 'signUp', 'redeemToken', 'requestLoginLink']);

/** One probe per String or ID place of every root field's arguments (a multipart upload aside). */
function probesOf(schema: GraphQLSchema): Probe[] {
  const probes: Probe[] = [];
  const roots = [
    ['query', schema.getQueryType()],
    ['mutation', schema.getMutationType()],
    ['subscription', schema.getSubscriptionType()],
  ] as const;
  for (const [operation, root] of roots) {
    for (const field of Object.values(root?.getFields() ?? {}) as GraphQLField<unknown, unknown>[]) {
      if (field.args.some((arg) => getNamedType(arg.type).name === 'File')) continue;
      const named = getNamedType(field.type);
      const selection = isObjectType(named) || isAbstractType(named) ? ' { __typename }' : '';
      const declarations = field.args.map((arg) => `$${arg.name}: ${String(arg.type)}`).join(', ');
      const uses = field.args.map((arg) => `${arg.name}: $${arg.name}`).join(', ');
      const query = `${operation} Probe(${declarations}) { ${field.name}(${uses})${selection} }`;
      for (const arg of field.args as GraphQLArgument[]) {
        for (const { path, list } of textPaths(arg.type)) {
          probes.push({
            name: `${root!.name}.${field.name}(${[arg.name, ...path].join('.')})`,
            operation,
            anonymous: LOGIN_FIELDS.has(field.name),
            query,
            variables(value) {
              const variables: Record<string, unknown> = {};
              for (const other of field.args) {
                if (isNonNullType(other.type)) variables[other.name] = fillValue(other.name, other.type);
              }
              variables[arg.name] = placed(variables[arg.name], path, list ? [value] : value, arg.type);
              return variables;
            },
          });
        }
      }
    }
  }
  return probes;
}

/** Index values are JSON, compared with documents' data: they reach SQL as encoded keys. */
const INDEX_PROBES: Probe[] = (['eq', 'gt', 'lte'] as const).map((operator) => ({
  name: `Query.documents(where.${operator})`,
  operation: 'query',
  anonymous: false,
  query:
    'query ($where: IndexQuery) { documents(collection: "notes", index: "bySlug", where: $where) { edges { cursor } } }',
  variables: (value) => ({ where: operator === 'eq' ? { eq: { slug: value } } : { [operator]: value } }),
}));

/** What the admin sees of everything a request could change (in parts: each within the cost limit). */
const SNAPSHOT = [
  '{ users(first: 100) { edges { node { id email name roles disabled } } } }',
  '{ invites(first: 100) { edges { node { id email roles } } } viewer { apiKeys { id name scopes } } }',
  '{ sessions(first: 100) { edges { node { id revokedAt } } } }',
  '{ documents(collection: "notes", first: 100) { edges { node { id version data } } } }',
  '{ leases(first: 100) { edges { node { key token } } } blobs(first: 100) { edges { node { id } } } }',
  '{ auditEvents(first: 100) { edges { cursor } } }',
];

describe.each(backends)('every string input gets a contract answer on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  /** Every String and ID argument; index values (document data) separately. */
  let probes: Probe[];
  const everyProbe = () => [...probes, ...INDEX_PROBES];

  beforeAll(async () => {
    ({ portico, admin } = await startGatewayWithAdmin({ backend, config: CONFIG, modules: [echo] }));
    probes = probesOf(buildSchema(portico.gateway.runtime.modules));
    const note = await admin.gql(PutDocumentDocument, {
      collection: 'notes',
      id: 'n1',
      data: { slug: 'one', tag: 't' },
    });
    expect(note.errors).toBeUndefined();
  });
  afterAll(() => portico?.close());

  const snapshot = async () => {
    const parts = await Promise.all(SNAPSHOT.map((query) => admin.gql(query)));
    for (const part of parts) expect(part.errors).toBeUndefined();
    return parts.map((part) => part.data);
  };

  const send = async (probe: Probe, value: string): Promise<GraphQLResponse<unknown>> => {
    const client = probe.anonymous ? portico.client() : copyOf(admin);
    const answer = await (probe.operation === 'subscription'
      ? subscriptionAnswer(client, probe.query, probe.variables(value))
      : client.gql(probe.query, probe.variables(value)));
    // Most values name a SQLite file in the data folder, which the switch opens as the store: back
    // to DATABASE_URL's, so that the next probes (and the snapshots) meet the same store.
    if (probe.name.startsWith('Mutation.switchStoreBackend(') && !answer.errors) {
      expect((await admin.gql(ResetStoreBackendDocument)).errors).toBeUndefined();
    }
    return answer;
  };

  /** Sends `value` to each probe; returns those whose answer `accept` does not take. */
  const failing = async (
    targets: Probe[],
    value: string,
    accept: (result: GraphQLResponse<unknown>) => void,
  ) => {
    const failures: string[] = [];
    for (const probe of targets) {
      const result = await send(probe, value);
      try {
        accept(result);
      } catch {
        const errors = result.errors?.map((error) => [error.extensions?.code, error.message.slice(0, 80)]);
        failures.push(`${probe.name}: ${result.status} ${JSON.stringify(errors)}`);
      }
    }
    return failures;
  };

  it('reaches every String and ID argument of the schema', () => {
    const names = probes.map((probe) => probe.name);
    for (const expected of [
      'Mutation.logIn(email)',
      'Mutation.signUp(input.email)',
      'Mutation.requestLoginLink(email)',
      'Query.document(id)',
      'Mutation.deleteDocument(id)',
      'Mutation.patchDocument(id)',
      'Mutation.revokeSession(id)',
      'Mutation.createApiKey(name)',
      'Mutation.revokeApiKey(id)',
      'Mutation.createInvite(email)',
      'Query.users(search)',
      'Query.node(id)',
      'Query.lease(key)',
      'Query.blob(id)',
      'Mutation.putDocument(fence.lease)',
      'Mutation.redeemToken(token)',
      'Subscription.documentChanged(id)',
    ]) {
      expect(names).toContain(expected);
    }
  });

  it.each(Object.entries(UNSTORABLE))(
    'refuses %s with BAD_USER_INPUT everywhere and changes nothing',
    async (_kind, value) => {
      const before = await snapshot();
      const failures = await failing(probes, value, (result) => {
        expectNoServerError(result);
        expect(result.errors?.map((error) => error.extensions?.code)).toContain('BAD_USER_INPUT');
      });
      // Index values are compared with document data, where such text is kept as given.
      failures.push(...(await failing(INDEX_PROBES, value, expectNoServerError)));
      // Also as a literal in the query text rather than a variable.
      const literal = await admin.gql(
        `{ document(collection: "notes", id: ${JSON.stringify(value)}) { id } }`,
      );
      expect(literal.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(failures).toEqual([]);
      expect(await snapshot()).toEqual(before);
      expect(errorLines(portico.logs)).toEqual([]);
    },
    120_000,
  );

  it.each(Object.entries(AWKWARD))(
    'answers %s with a contract answer everywhere',
    async (_kind, value) => {
      const failures = await failing(everyProbe(), value, (result) => {
        expectNoServerError(result);
        expect(result.status).toBeLessThan(500);
      });
      expect(failures).toEqual([]);
      expect(errorLines(portico.logs)).toEqual([]);
    },
    120_000,
  );

  it('answers hostile ids, tokens and codes on the HTTP routes with a 4xx', async () => {
    const csrfOf = async (client: TestClient, page: string) => {
      const html = await (await client.request(page)).text();
      return /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    };
    const form = (client: TestClient, path: string, fields: Record<string, string>) =>
      client.request(path, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields),
      });
    const anonymous = portico.client();
    const csrf = await csrfOf(anonymous, '/login');
    const signedIn = copyOf(admin);
    const adminCsrf = await csrfOf(signedIn, '/login');
    // In paths the router decodes nothing; in query strings and forms a lone surrogate's bytes decode to U+FFFD.
    // Long values stay below Node's 16 KiB of headers in URLs and, three at a time, the 64 KiB of a form.
    const encodings = ['%00', 'a%00b', '%ED%A0%80', '%01%1B%7F', `%27%22%3F%3F%241`, 'm'.repeat(8000)];
    for (const encoded of encodings) {
      const decoded = decodeURIComponent(encoded.replace('%ED%A0%80', '%EF%BF%BD'));
      const value = decoded.length > 1000 ? 'm'.repeat(20_000) : decoded;
      const answers = {
        'GET /blobs/:id': await signedIn.request(`/blobs/${encoded}`),
        'HEAD /blobs/:id': await signedIn.request(`/blobs/${encoded}`, { method: 'HEAD' }),
        'GET /blobs/:id?sig': await anonymous.request(`/blobs/x?sig=${encoded}&exp=${encoded}`),
        'GET /auth/redeem': await anonymous.request(`/auth/redeem?token=${encoded}`),
        'GET /device': await signedIn.request(`/device?user_code=${encoded}`),
        'POST /login': await form(anonymous, '/login', { csrf, email: value, password: value }),
        'POST /auth/redeem': await form(anonymous, '/auth/redeem', { csrf, token: value, email: value }),
        'POST /auth/login-link': await form(anonymous, '/auth/login-link', { csrf, email: value }),
        'POST /device': await form(signedIn, '/device', { csrf: adminCsrf, user_code: value }),
        'POST /oauth/device_authorization': await form(anonymous, '/oauth/device_authorization', {
          client_id: value,
          scope: value,
        }),
        'POST /oauth/token': await form(anonymous, '/oauth/token', {
          grant_type: DEVICE_GRANT,
          device_code: value,
          client_id: value,
        }),
      };
      for (const [route, response] of Object.entries(answers)) {
        await response.arrayBuffer();
        expect(response.status, `${route} with ${encoded.slice(0, 20)}`).toBeLessThan(500);
      }
      // The values that cannot be text are refused, not stored or looked up.
      if (encoded.includes('%00')) {
        for (const route of ['GET /blobs/:id', 'POST /oauth/device_authorization', 'POST /oauth/token']) {
          expect(answers[route as keyof typeof answers].status, route).toBeGreaterThanOrEqual(400);
        }
      }
    }
    expect(errorLines(portico.logs)).toEqual([]);
  }, 120_000);

  it('answers text PostgreSQL refuses with BAD_USER_INPUT where it reaches SQL, and keeps it elsewhere', async () => {
    const ECHO = 'query ($value: JSON!) { probeEcho(value: $value) }';
    for (const value of ['a\u0000b', '\u0000']) {
      const answer = await admin.gql<{ probeEcho: string }>(ECHO, { value });
      const route = await admin.request(`/probe-echo?value=${encodeURIComponent(value)}`);
      if (backend === 'postgres') {
        expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
        expect(route.status).toBe(400);
        expect(await route.json()).toMatchObject({ code: 'BAD_USER_INPUT' });
      } else {
        expect(answer.data?.probeEcho).toBe(value);
        expect(await route.json()).toEqual({ v: value });
      }
      expectNoServerError(answer);
    }
    expect(errorLines(portico.logs)).toEqual([]);
  });

  it('still answers afterwards, more requests at once than the database pool holds', async () => {
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => copyOf(admin).gql<{ users: { edges: unknown[] } }>(SNAPSHOT[0]!)),
    );
    for (const answer of answers) {
      expect(answer.errors).toBeUndefined();
      expect(answer.data?.users.edges.length).toBeGreaterThan(0);
    }
    const echoes = await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        copyOf(admin).gql<{ probeEcho: string }>('query ($v: JSON!) { probeEcho(value: $v) }', {
          v: `echo ${index}`,
        }),
      ),
    );
    expect(echoes.map((answer) => answer.data?.probeEcho)).toEqual(
      Array.from({ length: 30 }, (_, index) => `echo ${index}`),
    );
    expect((await fetch(new URL('/ready', portico.url))).status).toBe(200);
  });

  it('writes no value into the text of a statement: each one is bound', async () => {
    const capture = await captureStatements(portico.gateway.runtime.db.system);
    const markers: string[] = [];
    try {
      for (const [index, probe] of everyProbe().entries()) {
        const marker = `zq${index}qz`;
        markers.push(marker);
        await send(probe, /email/i.test(probe.name) ? `${marker}@example.com` : marker);
      }
      const data = await admin.gql(PutDocumentDocument, {
        collection: 'notes',
        data: { slug: 'zqdataqz', tag: 'zqdataqz' },
      });
      expect(data.errors).toBeUndefined();
      markers.push('zqdataqz');
    } finally {
      capture.stop();
    }
    const inlined = capture.statements.filter((sql) => markers.some((marker) => sql.includes(marker)));
    expect(inlined).toEqual([]);
    // The markers did reach the database, as values.
    const bound = new Set(markers.filter((marker) => capture.values.some((value) => value.includes(marker))));
    for (const name of [
      'Query.document(id)',
      'Mutation.createApiKey(name)',
      'Query.users(search)',
      'Mutation.logIn(email)',
    ]) {
      expect(bound, name).toContain(markers[probes.findIndex((probe) => probe.name === name)]);
    }
    expect(bound).toContain('zqdataqz');
  }, 120_000);
});

describe('bound parameters', () => {
  it('catches a driver that writes values into the statement (negative control)', async () => {
    const statementsOf = async (driver: typeof SqliteDriver | typeof BoundSqliteDriver) => {
      const orm = await MikroORM.init({
        // Two unrelated driver classes; init's types follow one of them.
        driver: driver as typeof SqliteDriver,
        dbName: ':memory:',
        entities: [],
        discovery: { warnWhenNoEntities: false },
      });
      const database = { orm, em: orm.em } as unknown as Database;
      const capture = await captureStatements(database);
      const select = (value: string) =>
        orm.em.getConnection().execute<{ a: string }[]>('select ? as a', [value]);
      const streamed = async (value: string) => {
        const rows: unknown[] = [];
        for await (const row of orm.em.getConnection().stream('select ? as a', [value])) rows.push(row);
        return rows;
      };
      try {
        return {
          capture,
          quoted: await select("it's zq"),
          nul: await select('a\u0000b').catch(() => null),
          streamed: await streamed('zq stream'),
        };
      } finally {
        capture.stop();
        await orm.close(true);
      }
    };
    const stock = await statementsOf(SqliteDriver);
    expect(stock.capture.statements[0]).toBe("select 'it''s zq' as a");
    // Written into the text, U+0000 ends the statement: the bug this driver exists for.
    expect(stock.nul).toBeNull();
    const bound = await statementsOf(BoundSqliteDriver);
    expect(bound.capture.statements).toEqual(['select ? as a', 'select ? as a', 'select ? as a']);
    expect(bound.capture.values).toEqual(["it's zq", 'a\u0000b', 'zq stream']);
    expect(bound.quoted).toEqual([{ a: "it's zq" }]);
    expect(bound.nul).toEqual([{ a: 'a\u0000b' }]);
    expect(bound.streamed).toEqual([{ a: 'zq stream' }]);
  });

  it('binds lists, raw fragments, JSON and dates, and quotes only identifiers', () => {
    const when = new Date('2030-01-02T03:04:05.006Z');
    const statement = (dialect: 'sqlite' | 'postgresql') =>
      bindStatement(
        'select ?? from t where a in (?) and b = ? and c = ? and d = ? and e \\? ? and f = ? and g = ?',
        ['col', ['x', 'y'], { k: 1 }, when, true, 'key', 7, raw('lower(?)', ['X'])],
        dialect,
        (name) => `"${name}"`,
      );
    expect(statement('postgresql')).toEqual({
      sql: 'select "col" from t where a in ($1, $2) and b = $3 and c = $4 and d = $5 and e ? $6 and f = $7 and g = lower($8)',
      parameters: ['x', 'y', '{"k":1}', when.toISOString(), true, 'key', 7, 'X'],
    });
    expect(statement('sqlite')).toEqual({
      sql: 'select "col" from t where a in (?, ?) and b = ? and c = ? and d = ? and e ? ? and f = ? and g = lower(?)',
      parameters: ['x', 'y', '{"k":1}', BigInt(when.getTime()), 1, 'key', 7n, 'X'],
    });
  });
});

/** Records the statements and the bound values a database's driver receives, below MikroORM. */
async function captureStatements(database: Pick<Database, 'orm'> & { em: Database['em'] }) {
  const statements: string[] = [];
  const values: string[] = [];
  const record = (parameters: unknown) => {
    if (Array.isArray(parameters)) values.push(...parameters.map((value) => String(value)));
  };
  const native = (await database.em.getConnection().getNativeClient()) as unknown;
  if (native && typeof (native as { prepare?: unknown }).prepare === 'function') {
    // better-sqlite3: every statement runs through its class's methods, also one prepared before
    // the capture (the store keeps its statements prepared).
    type Method = (this: { source: string }, ...args: unknown[]) => unknown;
    const statementClass = Object.getPrototypeOf(
      (native as { prepare: (sql: string) => object }).prepare('select 1'),
    ) as Record<string, Method>;
    const originals = new Map<string, Method>();
    for (const method of ['all', 'get', 'run', 'iterate']) {
      const run = statementClass[method]!;
      originals.set(method, run);
      statementClass[method] = function (...args) {
        statements.push(this.source);
        record(args.length === 1 && Array.isArray(args[0]) ? args[0] : args);
        return run.apply(this, args);
      };
    }
    const stop = () => {
      for (const [method, run] of originals) statementClass[method] = run;
    };
    return { statements, values, stop };
  }
  // pg: every statement is one `client.query(text, values)` of the pool's client class.
  const { prototype } = (native as { Client: { prototype: { query: (...args: unknown[]) => unknown } } })
    .Client;
  const query = prototype.query;
  prototype.query = function (this: unknown, ...args: unknown[]) {
    const [first, second] = args;
    const config =
      typeof first === 'string'
        ? { text: first, values: second }
        : (first as { text: string; values?: unknown });
    statements.push(config.text);
    record(config.values);
    return query.apply(this, args);
  };
  const stop = () => {
    prototype.query = query;
  };
  return { statements, values, stop };
}

/**
 * The errors a subscription over SSE answers with. A refused one answers at once and completes;
 * an accepted one stays open without events, so after a while it counts as accepted.
 */
async function subscriptionAnswer(
  client: TestClient,
  query: string,
  variables: Record<string, unknown>,
): Promise<GraphQLResponse<unknown>> {
  const response = await client.request('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(ACCEPTED_AFTER_MS),
  });
  if (!response.headers.get('content-type')?.includes('text/event-stream')) {
    return { ...(await response.json()), status: response.status, headers: response.headers };
  }
  let text = '';
  try {
    text = await response.text();
  } catch {
    return { status: response.status, headers: response.headers };
  }
  // Split on LF only: JSON text may hold U+2028, where `.` of a regular expression stops.
  const errors = text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .flatMap((line) => (JSON.parse(line.slice(6)) as { errors?: [] } | null)?.errors ?? []);
  return { errors, status: response.status, headers: response.headers };
}

const ACCEPTED_AFTER_MS = 2000;

/** A client with the same cookies, whose own cookie changes stay its own. */
function copyOf(client: TestClient): TestClient {
  const copy = new TestClient(client.url);
  for (const [name, value] of client.cookies) copy.cookies.set(name, value);
  return copy;
}
