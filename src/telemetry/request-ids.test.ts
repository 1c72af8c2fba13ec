import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { RedeemTokenDocument, RequestLoginLinkDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  connectWs,
  type GraphQLResponse,
  type LogLine,
  startGateway,
  subscribeOverSse,
  type TestGateway,
} from '../../test/harness.ts';
import { defineModule, serviceUnavailable } from '../index.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Fields and routes that log, fail, and fail as an outage, each inside its request. */
const probe = defineModule({
  name: 'test-request-ids',
  graphql(builder) {
    builder.queryField('requestIdLogs', (t) =>
      t.boolean({
        authScopes: { public: true },
        resolve: (_root, _args, { log }) => {
          log.info('probe field ran');
          return true;
        },
      }),
    );
    builder.queryField('requestIdCrash', (t) =>
      t.boolean({
        authScopes: { public: true },
        resolve: () => {
          throw new Error('probe field failed');
        },
      }),
    );
    builder.queryField('requestIdOutage', (t) =>
      t.boolean({
        authScopes: { public: true },
        resolve: () => {
          throw serviceUnavailable();
        },
      }),
    );
    builder.subscriptionField('requestIdTicks', (t) =>
      t.boolean({
        authScopes: { public: true },
        subscribe: async function* () {
          yield true;
        },
        resolve: (_tick, _args, { log }) => {
          log.info('probe event ran');
          throw new Error('probe event failed');
        },
      }),
    );
  },
  setup: () => ({
    routes: [
      {
        method: 'GET',
        path: '/request-id-probe/outage',
        handler: () => {
          throw serviceUnavailable();
        },
      },
      {
        method: 'GET',
        path: '/request-id-probe/crash',
        handler: () => {
          throw new Error('probe route failed');
        },
      },
    ],
  }),
});

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A request through node:http, which sends header bytes fetch refuses (Latin-1, raw UTF-8, tabs)
 * and a Content-Length with no body behind it.
 */
function rawRequest(
  url: string,
  path: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // A connection of its own: one left waiting for a declared body would swallow the next request.
    const request = httpRequest(new URL(path, url), { method, headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }),
      );
    });
    request.on('error', reject);
    if (body !== undefined) request.write(body);
    request.end();
  });
}

const json = { 'content-type': 'application/json' };
const graphqlBody = (query: string) => JSON.stringify({ query });
const requestIdOf = (response: Response) => response.headers.get('x-request-id');

describe.each(backends)('request ids on %s', (backend) => {
  let portico: TestGateway;
  beforeAll(async () => {
    portico = await startGateway({
      backend,
      modules: [probe],
      config: { methods: ['password', 'magic-link'] },
    });
  });
  afterAll(() => portico?.close());

  const get = (path: string, init?: RequestInit) => fetch(new URL(path, portico.url), init);
  const linesSaying = (msg: string) => portico.logs.filter((line) => line.msg === msg);

  it('keeps a sane incoming x-request-id and returns it', async () => {
    const sane = [
      'abc-123',
      '5f0c6a1e-2b7d-4c4e-9f1a-0d3b2c1a4e5f',
      'edge-1.example:8080/seq@42+x=',
      'x'.repeat(128),
    ];
    for (const id of sane) {
      const response = await get('/health', { headers: { 'x-request-id': id } });
      expect(requestIdOf(response)).toBe(id);
    }
  });

  it('replaces an insane one with a new id, never refusing the request', async () => {
    const insane = [
      'x'.repeat(129),
      'y'.repeat(200),
      'has space',
      'tab\there',
      '<script>alert(1)</script>',
      '"quoted";drop',
      'caf\u00e9',
      // The UTF-8 bytes of 'リクエスト', as a client sends them.
      Buffer.from('リクエスト').toString('latin1'),
    ];
    const given = new Set<string>();
    for (const id of insane) {
      const response = await rawRequest(portico.url, '/health', { headers: { 'x-request-id': id } });
      expect(response.status).toBe(200);
      const returned = response.headers['x-request-id'] as string;
      expect(returned).toMatch(UUID);
      given.add(returned);
    }
    // Two headers arrive joined with ", ", which is not an id either.
    const twice = await fetch(new URL('/health', portico.url), {
      headers: [
        ['x-request-id', 'one'],
        ['x-request-id', 'two'],
      ],
    });
    expect(requestIdOf(twice)).toMatch(UUID);
    const empty = await rawRequest(portico.url, '/health', { headers: { 'x-request-id': '' } });
    expect(empty.headers['x-request-id']).toMatch(UUID);
    expect(given.size).toBe(insane.length);
  });

  it('returns the id on every kind of answer, and lets browsers read it (CORS)', async () => {
    const answers: [string, Promise<Response | RawResponse>, number][] = [
      [
        'GraphQL',
        get('/graphql', { method: 'POST', headers: json, body: graphqlBody('{ auth { signup } }') }),
        200,
      ],
      ['unknown path', get('/nowhere'), 404],
      ['method not allowed', get('/request-id-probe/outage', { method: 'POST' }), 405],
      [
        'CSRF refusal',
        get('/graphql', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }),
        403,
      ],
      ['GraphiQL refused', get('/graphql', { headers: { accept: 'text/html' } }), 403],
      ['GraphiQL file refused', get('/graphiql/graphiql.css'), 404],
      [
        'body over the limit',
        rawRequest(portico.url, '/graphql', {
          method: 'POST',
          headers: { ...json, 'content-length': String(30_000_000) },
        }),
        413,
      ],
      ['route outage', get('/request-id-probe/outage'), 503],
      [
        'GraphQL outage',
        get('/graphql', { method: 'POST', headers: json, body: graphqlBody('{ requestIdOutage }') }),
        503,
      ],
      ['health', get('/health'), 200],
      ['readiness', get('/ready'), 200],
      ['login page', get('/login'), 200],
      ['console file', get('/admin/assets/nothing.js'), 404],
      ['preflight', get('/graphql', { method: 'OPTIONS', headers: { origin: 'https://app.example' } }), 204],
    ];
    for (const [what, answer, status] of answers) {
      const response = await answer;
      const id = response instanceof Response ? requestIdOf(response) : response.headers['x-request-id'];
      expect({ what, status: response.status, id }).toEqual({
        what,
        status,
        id: expect.stringMatching(UUID),
      });
    }
    const crossSite = await get('/graphql', {
      method: 'POST',
      headers: { ...json, origin: 'https://app.example' },
      body: graphqlBody('{ auth { signup } }'),
    });
    expect(crossSite.headers.get('access-control-expose-headers')).toContain('x-request-id');
  });

  it('puts the id in every GraphQL error, beside the contract code, and in the routes’ JSON errors', async () => {
    const client = portico.client();
    const failures: [string, GraphQLResponse][] = [
      ['masked', await client.gql('{ requestIdCrash }')],
      ['outage', await client.gql('{ requestIdOutage }')],
      ['syntax', await client.gql('{ viewer { ')],
      ['validation', await client.gql('{ nope }')],
      ['validation again (cached)', await client.gql('{ nope }')],
    ];
    const ids = new Set<string>();
    for (const [what, result] of failures) {
      const id = result.headers.get('x-request-id');
      expect({ what, extensions: result.errors?.[0]?.extensions }).toEqual({
        what,
        extensions: expect.objectContaining({ code: expect.any(String), requestId: id }),
      });
      ids.add(id!);
    }
    expect(ids.size).toBe(failures.length);
    const kept = await client.gql('{ requestIdCrash }', {}, { 'x-request-id': 'client-chosen-1' });
    expect(kept.errors?.[0]?.extensions).toEqual({
      code: 'INTERNAL_SERVER_ERROR',
      requestId: 'client-chosen-1',
    });

    const tooLarge = await rawRequest(portico.url, '/graphql', {
      method: 'POST',
      headers: { ...json, 'content-length': String(30_000_000), 'x-request-id': 'big-1' },
    });
    expect(JSON.parse(tooLarge.body).errors[0].extensions).toEqual({
      code: 'PAYLOAD_TOO_LARGE',
      requestId: 'big-1',
    });

    for (const [path, method, status] of [
      ['/request-id-probe/outage', 'GET', 503],
      ['/request-id-probe/crash', 'GET', 500],
      ['/request-id-probe/outage', 'POST', 405],
      ['/blobs/nothing-here', 'GET', 404],
    ] as const) {
      const response = await get(path, { method });
      expect(response.status).toBe(status);
      expect((await response.json()).requestId).toBe(requestIdOf(response));
    }
    const crossSiteSse = await get('/graphql', {
      method: 'POST',
      headers: { ...json, accept: 'text/event-stream', origin: 'https://elsewhere.example' },
      body: graphqlBody('subscription { requestIdTicks }'),
    });
    expect(crossSiteSse.status).toBe(403);
    expect((await crossSiteSse.json()).requestId).toBe(requestIdOf(crossSiteSse));
  });

  it('writes the id into every line logged while handling the request, and none outside', async () => {
    const client = portico.client();
    await client.gql('{ requestIdLogs }', {}, { 'x-request-id': 'logs-1' });
    expect(linesSaying('probe field ran').map((line) => line.requestId)).toEqual(['logs-1']);

    const crash = await client.gql('{ requestIdCrash }');
    const crashId = crash.headers.get('x-request-id');
    expect(linesSaying('unexpected error').at(-1)?.requestId).toBe(crashId);

    const route = await get('/request-id-probe/crash');
    expect(linesSaying('route failed').at(-1)?.requestId).toBe(requestIdOf(route));

    // A module's own line, in the request that bootstraps the first admin.
    const bootstrap = await client.gql(
      RedeemTokenDocument,
      { token: portico.bootstrapToken(), profile: ADMIN },
      { 'x-request-id': 'bootstrap-1' },
    );
    expect(bootstrap.errors).toBeUndefined();
    expect(linesSaying('first admin created; bootstrap closed').map((line) => line.requestId)).toEqual([
      'bootstrap-1',
    ]);
    // Work the request started, finished after the answer: the link is mailed in the background.
    await client.gql(RequestLoginLinkDocument, { email: ADMIN.email }, { 'x-request-id': 'mail-1' });
    await expect.poll(() => portico.logs.find((line) => line.mail !== undefined)?.requestId).toBe('mail-1');

    // Startup's lines belong to no request.
    const startup = portico.logs.filter((line) => /^pub\/sub: |^No admin yet/.test(line.msg));
    expect(startup.length).toBeGreaterThanOrEqual(2);
    for (const line of startup) expect(line).not.toHaveProperty('requestId');
  });

  it('gives a subscription over SSE the request’s id, in its events’ errors and logs', async () => {
    const { response, done } = await subscribeOverSse(
      portico.client(),
      'subscription { requestIdTicks }',
      {},
      { until: 1 },
    );
    const events = await done;
    const id = requestIdOf(response);
    expect(id).toMatch(UUID);
    const [event] = events.filter((each) => each.event === 'next');
    expect((event?.data as GraphQLResponse | undefined)?.errors?.[0]?.extensions).toEqual({
      code: 'INTERNAL_SERVER_ERROR',
      requestId: id,
    });
    expect(linesSaying('probe event ran').filter((line) => line.requestId === id)).toHaveLength(1);
  });

  it('gives a WebSocket upgrade an id, and each operation on it its own', async () => {
    const upgraded = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const socket = new WebSocket(`${portico.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', {
        headers: { 'x-request-id': 'upgrade-1' },
      });
      socket.once('upgrade', (answer) => {
        resolve(answer.headers);
        socket.close();
      });
      socket.once('error', reject);
    });
    expect(upgraded['x-request-id']).toBe('upgrade-1');
    const refused = await new Promise<IncomingHttpHeaders>((resolve) => {
      const socket = new WebSocket(`${portico.url.replace(/^http/, 'ws')}/nowhere`, 'graphql-transport-ws');
      socket.once('unexpected-response', (_request, answer) => {
        resolve(answer.headers);
        socket.terminate();
      });
      socket.on('error', () => {});
    });
    expect(refused['x-request-id']).toMatch(UUID);

    const { client: ws } = connectWs(portico.url);
    try {
      const run = async (query: string) => {
        const results: GraphQLResponse[] = [];
        for await (const result of ws.iterate({ query })) results.push(result as GraphQLResponse);
        return results;
      };
      const [crashed] = await run('{ requestIdCrash }');
      const [ticked] = await run('subscription { requestIdTicks }');
      const refusedOperation = await run('{ nope }').catch((errors: GraphQLResponse['errors']) => errors);
      const crashId = crashed?.errors?.[0]?.extensions?.requestId;
      const tickId = ticked?.errors?.[0]?.extensions?.requestId;
      expect(crashId).toMatch(UUID);
      expect(tickId).toMatch(UUID);
      expect(crashId).not.toBe(tickId);
      expect(refusedOperation).toEqual([
        expect.objectContaining({
          extensions: expect.objectContaining({
            code: 'BAD_USER_INPUT',
            requestId: expect.stringMatching(UUID),
          }),
        }),
      ]);
      // Yoga's `extensions.http` sets an HTTP answer's status; a WebSocket message has none.
      expect((refusedOperation as GraphQLResponse['errors'])?.[0]?.extensions).not.toHaveProperty('http');
      expect(linesSaying('unexpected error').some((line) => line.requestId === crashId)).toBe(true);
      expect(linesSaying('probe event ran').some((line) => line.requestId === tickId)).toBe(true);
    } finally {
      await ws.dispose();
    }
  });

  it('adds the trace and span of an active recording span to the lines', async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    const tracer = new TracerProvider().getTracer('request-ids-test');
    const { log } = portico.gateway.runtime;
    try {
      const traced = await tracer.startActiveSpan('client call', async (span) => {
        log.info('inside a span, outside requests');
        await portico.gateway.fetch(
          new Request(new URL('/graphql', portico.url), {
            method: 'POST',
            headers: { ...json, 'x-request-id': 'traced-1' },
            body: graphqlBody('{ requestIdLogs }'),
          }),
        );
        span.end();
        return span.spanContext();
      });
      const unsampled = trace.wrapSpanContext({ ...traced, traceFlags: 0 });
      context.with(trace.setSpan(context.active(), unsampled), () => log.info('inside an unsampled span'));
      log.info('outside spans and requests');

      const line = (msg: string) => portico.logs.findLast((entry) => entry.msg === msg) as LogLine;
      expect(line('inside a span, outside requests')).toMatchObject({
        traceId: traced.traceId,
        spanId: traced.spanId,
      });
      expect(line('inside a span, outside requests')).not.toHaveProperty('requestId');
      // Tracing may open spans of its own within the request: the trace is the caller's.
      expect(line('probe field ran')).toMatchObject({
        requestId: 'traced-1',
        traceId: traced.traceId,
        spanId: expect.stringMatching(/^[0-9a-f]{16}$/),
      });
      for (const msg of ['inside an unsampled span', 'outside spans and requests']) {
        expect(Object.keys(line(msg)).filter((key) => /Id$/.test(key))).toEqual([]);
      }
    } finally {
      context.disable();
    }
  });
});
