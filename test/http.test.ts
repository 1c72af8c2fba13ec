import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogInDocument, UsersDocument } from '../client/index.ts';
import { defineModule } from '../src/index.ts';
import { MAX_REQUEST_BODY_BYTES } from '../src/plugins/use-body-limit.ts';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestClient,
  type TestGateway,
} from './harness.ts';
import { Outage } from './outage.ts';

/** Fields that misbehave on purpose: a slow one (shutdown) and one that throws a leaky error (masking). */
const probe = defineModule({
  name: 'test-probe',
  graphql(builder) {
    builder.queryField('probeSlow', (t) =>
      t.boolean({
        authScopes: { public: true },
        args: { ms: t.arg.int({ required: true }) },
        resolve: async (_root, { ms }) => {
          await sleep(ms);
          return true;
        },
      }),
    );
    builder.queryField('probeCrash', (t) =>
      t.boolean({
        authScopes: { public: true },
        resolve: () => {
          throw new Error('select * from users failed at /srv/portico/secret.ts:12');
        },
      }),
    );
  },
});

const SIGN_UP =
  'mutation { signUp(input: { email: "csrf@example.com", password: "a long enough passphrase" }) { user { id } } }';

describe.each(backends)('HTTP surface on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, modules: [probe], config: { signup: 'open' } });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  const raw = (path: string, init?: RequestInit) => fetch(new URL(path, portico.url), init);

  it('refuses non-JSON requests without the CSRF header, running nothing', async () => {
    const form = new FormData();
    form.set('query', SIGN_UP);
    const attempts: RequestInit[] = [
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ query: SIGN_UP }) },
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ query: SIGN_UP }),
      },
      { method: 'POST', body: form },
    ];
    for (const init of attempts) expect((await raw('/graphql', init)).status).toBe(403);
    const get = await raw(`/graphql?query=${encodeURIComponent('{ auth { signup } }')}`);
    expect(get.status).toBe(403);
    const login = await portico
      .client()
      .gql(LogInDocument, { email: 'csrf@example.com', password: 'a long enough passphrase' });
    expect(codeOf(login)).toBe('INVALID_CREDENTIALS');
  });

  it('accepts GET queries with either CSRF header, and answers 405 to mutations over GET', async () => {
    for (const header of ['x-portico-csrf', 'x-graphql-yoga-csrf']) {
      const response = await raw(`/graphql?query=${encodeURIComponent('{ auth { signup } }')}`, {
        headers: { [header]: '1' },
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ data: { auth: { signup: 'OPEN' } } });
    }
    const mutation = await raw(`/graphql?query=${encodeURIComponent('mutation { logOut }')}`, {
      headers: { 'x-portico-csrf': '1' },
    });
    expect(mutation.status).toBe(405);
  });

  it('answers malformed requests with 4xx and a contract code, never 500', async () => {
    const badJson = await raw('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query":',
    });
    expect(badJson.status).toBe(400);
    const syntax = await portico.client().gql('{ viewer { ');
    expect(syntax.status).toBe(400);
    expect(codeOf(syntax)).toBe('BAD_USER_INPUT');
    const unknownField = await portico.client().gql('{ nope }');
    expect(codeOf(unknownField)).toBe('BAD_USER_INPUT');
    const badVariable = await portico
      .client()
      .gql('query ($n: Int) { users(first: $n) { edges { cursor } } }', { n: 'x' });
    expect(codeOf(badVariable)).toBe('BAD_USER_INPUT');
  });

  it('limits request bodies at 25 MB, whether declared or chunked', async () => {
    const query = '{ auth { signup } }';
    // A JSON body padded with spaces to exactly `size` bytes.
    const body = (size: number) => {
      const json = JSON.stringify({ query });
      return `${json.slice(0, -1)}${' '.repeat(size - json.length)}}`;
    };
    const post = (payload: BodyInit, headers: Record<string, string> = {}) =>
      raw('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: payload,
        duplex: 'half',
      } as RequestInit);
    const atLimit = await post(body(MAX_REQUEST_BODY_BYTES));
    expect(atLimit.status).toBe(200);
    const declared = await post(body(MAX_REQUEST_BODY_BYTES + 1));
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({ errors: [{ extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    const chunks = (size: number) =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          const bytes = new TextEncoder().encode(body(size));
          for (let offset = 0; offset < bytes.length; offset += 1 << 20)
            controller.enqueue(bytes.subarray(offset, offset + (1 << 20)));
          controller.close();
        },
      });
    expect((await post(chunks(MAX_REQUEST_BODY_BYTES))).status).toBe(200);
    expect((await post(chunks(MAX_REQUEST_BODY_BYTES + 1))).status).toBe(413);
    // In process there is no HTTP framing: the body is counted as it streams.
    const inProcess = await portico.gateway.fetch(
      new Request(new URL('/graphql', portico.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': '10' },
        body: chunks(MAX_REQUEST_BODY_BYTES + 1),
        duplex: 'half',
      } as RequestInit),
    );
    expect(inProcess.status).toBe(413);
  });

  it('masks unexpected errors: no message, stack, SQL or path leaves the server', async () => {
    const result = await portico.client().gql('{ probeCrash }');
    expect(result.errors?.[0]?.message).toBe('Unexpected error.');
    expect(codeOf(result)).toBe('INTERNAL_SERVER_ERROR');
    const text = JSON.stringify(result);
    expect(text).not.toMatch(/select|secret|\.ts|stack|at /i);
  });

  it('enforces the GraphQL limits at and one past each edge, before any resolver runs', async () => {
    const client = portico.client();
    // viewer > user > sessions > user > ... > id: `levels` selections deep.
    const deep = (levels: number) => {
      const chain = ['viewer', 'user'];
      while (chain.length < levels - 1) chain.push(chain.length % 2 === 0 ? 'sessions' : 'user');
      return `{ ${chain.reduceRight((inner, field) => `${field} { ${inner} }`, 'id')} }`;
    };
    expect((await client.gql(deep(10))).errors).toBeUndefined();
    expect(codeOf(await client.gql(deep(11)))).toBe('BAD_USER_INPUT');

    const signUps = (n: number) =>
      `mutation { ${Array.from({ length: n }, (_, i) => `a${i}: signUp(input: { email: "alias${n}-${i}@example.com", password: "a long enough passphrase" }) { user { id } }`).join(' ')} }`;
    const rejected = await client.gql(signUps(16));
    expect(codeOf(rejected)).toBe('BAD_USER_INPUT');
    expect(rejected.data).toBeUndefined();
    const nobody = await client.gql(LogInDocument, {
      email: 'alias16-0@example.com',
      password: 'a long enough passphrase',
    });
    expect(codeOf(nobody)).toBe('INVALID_CREDENTIALS');
    const aliases = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => `a${i}: auth { signup }`).join(' ')} }`;
    expect((await client.gql(aliases(15))).errors).toBeUndefined();

    // 16 tokens around a list of n strings; commas are not tokens. At the limit the mutation parses and
    // reaches its scope check (UNAUTHENTICATED); one past, it is refused as bad input before that.
    const tokens = (n: number) =>
      `mutation { setUserRoles(userId: "x", roles: [${'"r", '.repeat(n - 16)}]) { id } }`;
    expect(codeOf(await client.gql(tokens(2000)))).toBe('UNAUTHENTICATED');
    const overLimit = await client.gql(tokens(2001));
    expect(codeOf(overLimit)).toBe('BAD_USER_INPUT');
    expect(overLimit.data).toBeUndefined();

    const manyDirectives = `{ auth { ${Array.from({ length: 51 }, () => 'signup @skip(if: false)').join(' ')} } }`;
    const atLimit = `{ auth { ${Array.from({ length: 50 }, () => 'signup @skip(if: false)').join(' ')} } }`;
    expect((await client.gql(atLimit)).errors).toBeUndefined();
    expect(codeOf(await client.gql(manyDirectives))).toBe('BAD_USER_INPUT');
  });

  it('does not reveal the limits or the schema to anonymous clients in production', async () => {
    const result = await portico
      .client()
      .gql(`mutation { setUserRoles(userId: "x", roles: [${'"r", '.repeat(2100)}]) { id } }`);
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(JSON.stringify(result.errors)).not.toMatch(/2000/);
    const introspection = await portico.client().gql('{ __schema { queryType { name } } }');
    expect(codeOf(introspection)).toBe('BAD_USER_INPUT');
    const suggestion = await portico.client().gql('{ viewr { scopes } }');
    expect(JSON.stringify(suggestion.errors)).not.toMatch(/Did you mean/);
    const asAdmin = await admin.gql<{ __schema: { queryType: { name: string } } }>(
      '{ __schema { queryType { name } } }',
    );
    expect(asAdmin.data?.__schema.queryType.name).toBe('Query');
  });

  it('opens GraphiQL to admins only', async () => {
    const anonymous = await raw('/graphql', { headers: { accept: 'text/html' } });
    expect(anonymous.status).toBe(403);
    expect(await anonymous.text()).toMatch(/\/login/);
    const asAdmin = await admin.request('/graphql', { headers: { accept: 'text/html' } });
    expect(asAdmin.status).toBe(200);
    expect(await asAdmin.text()).toMatch(/graphiql/i);
  });

  it('serves /health and /ready, and 404 for unknown paths', async () => {
    expect((await raw('/health')).status).toBe(200);
    const ready = await raw('/ready');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ databases: { system: true, store: true } });
    expect((await raw('/nowhere')).status).toBe(404);
    // Only /ready itself: a path that merely ends in it is no readiness check.
    expect((await raw('/nowhere/ready')).status).toBe(404);
  });

  it('serves its icon where its pages link it and where browsers look for one', async () => {
    const page = await (await raw('/login')).text();
    expect(page).toContain('<link rel="icon" type="image/svg+xml" href="/favicon.svg">');
    for (const path of ['/favicon.svg', '/favicon.ico']) {
      const icon = await raw(path);
      expect(icon.status).toBe(200);
      expect(icon.headers.get('content-type')).toBe('image/svg+xml');
      expect(icon.headers.get('content-security-policy')).toMatch(/^default-src 'none'/);
      expect(await icon.text()).toMatch(/^<svg [^>]*><title>Portico<\/title>/);
    }
    expect((await raw('/favicon.png')).status).toBe(404);
  });

  it('finishes in-flight requests on shutdown, then stops accepting', async () => {
    const draining = await startGateway({ backend, modules: [probe] });
    const slow = draining.client().gql<{ probeSlow: boolean }>('{ probeSlow(ms: 500) }');
    await sleep(100);
    const closing = draining.close();
    const result = await slow;
    expect(result.data?.probeSlow).toBe(true);
    await closing;
    await expect(fetch(new URL('/health', draining.url))).rejects.toThrow();
  });
});

describe('development mode', () => {
  it('opens GraphiQL and introspection to everyone', async () => {
    const portico = await startGateway({ modules: [probe], env: { NODE_ENV: 'development' } });
    try {
      const page = await fetch(new URL('/graphql', portico.url), { headers: { accept: 'text/html' } });
      expect(page.status).toBe(200);
      const introspection = await portico.client().gql('{ __schema { queryType { name } } }');
      expect(introspection.errors).toBeUndefined();
    } finally {
      await portico.close();
    }
  });
});

describe.runIf(backends.includes('postgres'))('a database outage on postgres', () => {
  it('answers 503 while PostgreSQL is away and recovers by itself', async () => {
    const { createTestDatabase } = await import('./harness.ts');
    const database = await createTestDatabase('postgres', '/tmp');
    const { outage, url: proxied } = await Outage.before(database.url);
    const portico = await startGateway({
      backend: 'postgres',
      modules: [probe],
      databaseUrl: proxied,
    });
    try {
      const admin = await bootstrapAdmin(portico);
      await outage.down();
      const ready = await fetch(new URL('/ready', portico.url));
      expect(ready.status).toBe(503);
      // The start page says so in words, and still leads on.
      const start = await fetch(new URL('/', portico.url));
      expect(start.status).toBe(200);
      const page = await start.text();
      expect(page).toContain('<span class="error">Not ready now</span>');
      expect(page).not.toMatch(/ECONN|5432/);
      const users = await admin.gql(UsersDocument);
      expect(users.status).toBe(503);
      expect(codeOf(users)).toBe('SERVICE_UNAVAILABLE');
      expect(JSON.stringify(users)).not.toMatch(/ECONN|5432|postgres/i);
      const login = await portico
        .client()
        .gql(LogInDocument, { email: 'a@b.co', password: 'whatever it is' });
      expect(login.status).toBe(503);

      await outage.up();
      await expect
        .poll(async () => (await fetch(new URL('/ready', portico.url))).status, { timeout: 10_000 })
        .toBe(200);
      const again = await admin.gql(UsersDocument);
      expect(again.status).toBe(200);
      expect(again.data?.users.edges.length).toBe(1);
    } finally {
      await portico.close();
      await outage.down();
      await database.drop();
    }
  });
});
