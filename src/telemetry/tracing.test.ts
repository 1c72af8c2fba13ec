import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PutDocumentDocument, ViewerDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  connectWs,
  queryText,
  startGateway,
  storeKey,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import {
  newTraceparent,
  type OtlpReceiver,
  type ReceivedSpan,
  SPAN_KIND,
  STATUS_ERROR,
  startOtlpReceiver,
} from '../../test/otlp.ts';
import { ConfigError } from '../config.ts';
import { loadConfig } from '../load-config.ts';
import { tracingSettings } from './tracing-settings.ts';

const CONFIG = { collections: { notes: {} } };

/** The environment that sends a gateway's spans to `receiver` as OTLP/JSON. */
const tracingTo = (receiver: OtlpReceiver, serviceName: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_SERVICE_NAME: serviceName,
});

/** Sends the spans ended so far: no waiting for the batch processor's timer. */
const flush = (...gateways: TestGateway[]) =>
  Promise.all(gateways.map((portico) => portico.gateway.tracing!.forceFlush()));

const inTrace = (receiver: OtlpReceiver, traceId: string) =>
  receiver.spans().filter((span) => span.traceId === traceId);

const only = (spans: ReceivedSpan[], predicate: (span: ReceivedSpan) => boolean) => {
  const found = spans.filter(predicate);
  expect(found, JSON.stringify(spans.map((span) => span.name))).toHaveLength(1);
  return found[0]!;
};

/** Whether `span` lies below `ancestor` in `spans`. */
const isBelow = (spans: ReceivedSpan[], span: ReceivedSpan, ancestor: ReceivedSpan) => {
  for (let at = span; at.parentSpanId; ) {
    if (at.parentSpanId === ancestor.spanId) return true;
    const parent = spans.find((candidate) => candidate.spanId === at.parentSpanId);
    if (!parent) return false;
    at = parent;
  }
  return false;
};

const system = (backend: string) => (backend === 'postgres' ? 'postgresql' : 'sqlite');

describe.each(backends)('traces of one gateway on %s', (backend) => {
  let receiver: OtlpReceiver;
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    portico = await startGateway({ backend, config: CONFIG, env: tracingTo(receiver, 'portico-test') });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(async () => {
    await portico?.close();
    await receiver?.close();
  });

  it("writes the request's trace id and request id into its log lines", async () => {
    // The first admin's bootstrap, in beforeAll, logged from inside its request (first: later tests clear the receiver).
    const line = portico.logs.find((entry) => entry.msg.startsWith('first admin created'));
    expect(line).toMatchObject({ traceId: expect.any(String), requestId: expect.any(String) });
    await flush(portico);
    const spans = inTrace(receiver, String(line!.traceId));
    expect(spans.find((span) => span.spanId === line!.spanId)?.name).toBe('mutation RedeemToken');
    expect(only(spans, (span) => span.kind === SPAN_KIND.SERVER).name).toBe('POST /graphql');
  });

  it('continues an incoming traceparent: the request, its operation, and its statements below', async () => {
    const incoming = newTraceparent();
    const secret = 'a value no span may carry';
    const put = await admin.gql(
      PutDocumentDocument,
      { collection: 'notes', id: 'traced', data: { secret } },
      { traceparent: incoming.header },
    );
    expect(put.errors).toBeUndefined();
    await flush(portico);

    const spans = inTrace(receiver, incoming.traceId);
    const request = only(spans, (span) => span.kind === SPAN_KIND.SERVER);
    expect(request).toMatchObject({
      name: 'POST /graphql',
      parentSpanId: incoming.parentSpanId,
      service: 'portico-test',
      attributes: {
        'http.request.method': 'POST',
        'url.path': '/graphql',
        'http.route': '/graphql',
        'http.response.status_code': 200,
      },
    });
    expect(request.status.code).not.toBe(STATUS_ERROR);

    const operation = only(spans, (span) => span.name === 'mutation PutDocument');
    expect(operation.parentSpanId).toBe(request.spanId);
    expect(operation.attributes).toMatchObject({
      'graphql.operation.type': 'mutation',
      'graphql.operation.name': 'PutDocument',
    });
    expect(String(operation.attributes['graphql.document'])).toContain('mutation PutDocument');

    const statements = spans.filter((span) => span.attributes['db.system.name'] === system(backend));
    expect(statements.every((span) => span.kind === SPAN_KIND.CLIENT)).toBe(true);
    const write = statements.find(
      (span) => span.attributes['db.operation.name'] === 'INSERT' && isBelow(spans, span, operation),
    );
    expect(write, JSON.stringify(statements.map((span) => span.name))).toBeDefined();
    expect(write!.name).toBe(`INSERT ${write!.attributes['db.collection.name']}`);
    expect(String(write!.attributes['db.query.text'])).toMatch(backend === 'postgres' ? /\$1/ : /\?/);

    const publish = only(spans, (span) => span.name === 'publish document.changed');
    expect(publish.kind).toBe(SPAN_KIND.PRODUCER);
    expect(isBelow(spans, publish, operation)).toBe(true);

    // Statements carry placeholders, documents are not copied: no value reaches the collector.
    expect(JSON.stringify(spans)).not.toContain(secret);
  });

  it('gives blob storage calls spans of their request', async () => {
    const incoming = newTraceparent();
    const response = await admin.request('/blobs', {
      method: 'POST',
      headers: {
        'x-portico-csrf': '1',
        'content-type': 'application/octet-stream',
        traceparent: incoming.header,
      },
      body: new TextEncoder().encode('traced bytes'),
    });
    expect(response.status).toBe(201);
    await flush(portico);

    const spans = inTrace(receiver, incoming.traceId);
    const request = only(spans, (span) => span.kind === SPAN_KIND.SERVER);
    expect(request.name).toBe('POST /blobs');
    const stage = only(spans, (span) => span.name === 'blob stage');
    expect(isBelow(spans, stage, request)).toBe(true);
    expect(spans.some((span) => span.name === 'blob commit')).toBe(true);
  });

  it('names other requests after their route pattern, and starts a trace without a traceparent', async () => {
    receiver.clear();
    const response = await admin.request('/blobs/no-such-blob');
    expect(response.status).toBe(404);
    await flush(portico);
    const request = only(receiver.spans(), (span) => span.kind === SPAN_KIND.SERVER);
    expect(request).toMatchObject({
      name: 'GET /blobs/:id',
      parentSpanId: '',
      attributes: {
        'http.route': '/blobs/:id',
        'url.path': '/blobs/no-such-blob',
        'http.response.status_code': 404,
      },
    });
  });

  it('gives an operation over WebSocket its span', async () => {
    receiver.clear();
    const { client } = connectWs(portico.url, { client: admin });
    try {
      for await (const result of client.iterate({ query: queryText(ViewerDocument) })) {
        expect(result.errors).toBeUndefined();
      }
    } finally {
      await client.dispose();
    }
    await flush(portico);
    const spans = receiver.spans();
    const operation = only(spans, (span) => span.name === 'query Viewer');
    expect(operation.kind).toBe(SPAN_KIND.SERVER);
    expect(operation.attributes['graphql.operation.type']).toBe('query');
  });

  it('marks an operation that answered errors as failed, with its code', async () => {
    const incoming = newTraceparent();
    const refused = await portico
      .client()
      .gql(PutDocumentDocument, { collection: 'notes', data: {} }, { traceparent: incoming.header });
    expect(refused.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    await flush(portico);
    const operation = only(
      inTrace(receiver, incoming.traceId),
      (span) => span.name === 'mutation PutDocument',
    );
    expect(operation.status.code).toBe(STATUS_ERROR);
    expect(operation.attributes['error.type']).toBe('UNAUTHENTICATED');
  });
});

describe.each(backends)('one trace across an edge and its data server on %s', (backend) => {
  let receiver: OtlpReceiver;
  let dataServer: TestGateway;
  let edge: TestGateway;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    dataServer = await startGateway({ backend, config: CONFIG, env: tracingTo(receiver, 'portico-data') });
    edge = await startGateway({
      config: CONFIG,
      databaseUrl: `portico+${dataServer.url}`,
      env: { PORTICO_REMOTE_API_KEY: await storeKey(dataServer), ...tracingTo(receiver, 'portico-edge') },
    });
  });
  afterAll(async () => {
    await edge?.close();
    await dataServer?.close();
    await receiver?.close();
  });

  it('carries the trace from the edge to the data server and its database', async () => {
    const admin = await bootstrapAdmin(edge, ADMIN);
    const incoming = newTraceparent();
    const put = await admin.gql(
      PutDocumentDocument,
      { collection: 'notes', id: 'across', data: { n: 1 } },
      { traceparent: incoming.header },
    );
    expect(put.errors).toBeUndefined();
    await flush(edge, dataServer);

    const spans = inTrace(receiver, incoming.traceId);
    expect(new Set(spans.map((span) => span.service))).toEqual(new Set(['portico-edge', 'portico-data']));
    const entry = only(spans, (span) => span.service === 'portico-edge' && span.kind === SPAN_KIND.SERVER);
    expect(entry.parentSpanId).toBe(incoming.parentSpanId);
    const operation = only(
      spans,
      (span) => span.service === 'portico-edge' && span.name === 'mutation PutDocument',
    );

    // Each call to the data server is a CLIENT span whose child is the data server's SERVER span.
    const calls = spans.filter(
      (span) =>
        span.service === 'portico-edge' &&
        span.kind === SPAN_KIND.CLIENT &&
        'http.request.method' in span.attributes,
    );
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(isBelow(spans, call, operation)).toBe(true);
      expect(call.attributes).toMatchObject({ 'http.request.method': 'POST', 'server.address': '127.0.0.1' });
      const served = only(
        spans,
        (span) => span.service === 'portico-data' && span.parentSpanId === call.spanId,
      );
      expect(served.kind).toBe(SPAN_KIND.SERVER);
      expect(served.name).toMatch(/^POST \/store\/v1\//);
    }
    const dataStatements = spans.filter(
      (span) => span.service === 'portico-data' && span.attributes['db.system.name'] === system(backend),
    );
    expect(dataStatements.length).toBeGreaterThan(0);
    expect(dataStatements.every((span) => isBelow(spans, span, entry))).toBe(true);
    expect(new Set(spans.map((span) => span.serviceInstance)).size).toBe(2);
  });
});

describe('traces over OTLP/HTTP with protobuf, the default encoding', () => {
  it('sends application/x-protobuf spans carrying the incoming trace', async () => {
    const receiver = await startOtlpReceiver();
    const portico = await startGateway({
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/custom/traces` },
    });
    try {
      const incoming = newTraceparent();
      const response = await portico
        .client()
        .request('/health', { headers: { traceparent: incoming.header } });
      expect(response.status).toBe(200);
      await flush(portico);
      const [received] = receiver.exports;
      expect(received).toMatchObject({ path: '/custom/traces', contentType: 'application/x-protobuf' });
      // Protobuf carries ids as raw bytes and names as UTF-8.
      expect(received!.body.includes(Buffer.from(incoming.traceId, 'hex'))).toBe(true);
      expect(received!.body.includes(Buffer.from(incoming.parentSpanId, 'hex'))).toBe(true);
      expect(received!.body.includes(Buffer.from('GET /health'))).toBe(true);
      expect(received!.body.includes(Buffer.from('portico'))).toBe(true);
    } finally {
      await portico.close();
      await receiver.close();
    }
  });
});

describe('a collector that refuses spans', () => {
  it('fails no request and no close, and is logged once, not at every batch', async () => {
    const receiver = await startOtlpReceiver({ status: 400 });
    const portico = await startGateway({ env: tracingTo(receiver, 'portico-refused') });
    try {
      for (let batch = 0; batch < 2; batch++) {
        expect((await portico.client().request('/health')).status).toBe(200);
        await expect(flush(portico)).rejects.toBeDefined();
      }
      expect(receiver.exports).toHaveLength(2);
      const refusals = portico.logs.filter((line) =>
        line.msg.startsWith('traces: the collector does not take spans'),
      );
      expect(refusals).toHaveLength(1);
      expect(refusals[0]!.level).toBe(40);
      // The close sends the last span, which is refused too.
      expect((await portico.client().request('/health')).status).toBe(200);
      await portico.stop();
      expect(receiver.exports).toHaveLength(3);
    } finally {
      await portico.close();
      await receiver.close();
    }
  });
});

describe('a batch of spans a request sets off', () => {
  it("is sent outside that request: the collector's refusal is logged without its request id", async () => {
    const receiver = await startOtlpReceiver({ status: 400 });
    // A batch of one: the request's own span ending sends it, from inside the request.
    const portico = await startGateway({
      env: { ...tracingTo(receiver, 'portico-batch'), OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '1' },
    });
    try {
      expect((await portico.client().request('/health')).status).toBe(200);
      await expect.poll(() => receiver.exports.length).toBeGreaterThan(0);
      const refusal = () =>
        portico.logs.find((line) => line.msg.startsWith('traces: the collector does not take'));
      await expect.poll(refusal).toBeDefined();
      expect(refusal()).not.toHaveProperty('requestId');
    } finally {
      await portico.close();
      await receiver.close();
    }
  });
});

describe('tracing settings', () => {
  it('is off, with no provider, unless an OTLP endpoint is set, also beside a gateway that traces', async () => {
    const receiver = await startOtlpReceiver();
    const traced = await startGateway({ env: tracingTo(receiver, 'traced') });
    const portico = await startGateway({ env: { OTEL_SERVICE_NAME: 'not-traced' } });
    try {
      expect(portico.gateway.tracing).toBeNull();
      const incoming = newTraceparent();
      const response = await portico
        .client()
        .request('/health', { headers: { traceparent: incoming.header } });
      expect(response.status).toBe(200);
      expect((await traced.client().request('/health')).status).toBe(200);
      await flush(traced);
      expect(receiver.spans().map((span) => span.service)).toEqual(['traced']);
    } finally {
      await portico.close();
      await traced.close();
      await receiver.close();
    }
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' };
    expect(tracingSettings({}, [])).toBeNull();
    expect(tracingSettings({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }, [])).toBeNull();
    expect(tracingSettings({ ...endpoint, OTEL_SDK_DISABLED: 'true' }, [])).toBeNull();
  });

  it('reads the standard variables, the signal-specific ones first', () => {
    const issues: string[] = [];
    const settings = tracingSettings(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example/otlp/',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=shared,x-tenant=a%20b',
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-api-key=traces',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging,service.name=ignored',
        OTEL_SERVICE_NAME: 'edge-1',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
      },
      issues,
    );
    expect(issues).toEqual([]);
    expect(settings).toMatchObject({
      url: 'https://collector.example/otlp/v1/traces',
      protocol: 'http/protobuf',
      headers: { 'x-api-key': 'traces', 'x-tenant': 'a b' },
      serviceName: 'edge-1',
      resourceAttributes: { 'deployment.environment.name': 'staging' },
      sampler: 'parentbased_traceidratio',
      samplerRatio: 0.25,
    });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/x' }, [])).toMatchObject({
      url: 'http://c:4318/x',
      serviceName: 'portico',
      sampler: 'parentbased_always_on',
    });
  });

  it('refuses to start on values it cannot use, saying which and why', async () => {
    const error = await loadConfig({
      cwd: tmpdir(),
      builtinModules: [],
      needSecret: false,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_HEADERS: 'no-equals-sign-secret',
        OTEL_TRACES_SAMPLER: 'sometimes',
      },
    }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ConfigError);
    const { issues } = error as ConfigError;
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:\/\/ or https:\/\/ URL/),
        expect.stringMatching(/^OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not offered; use http\/protobuf/),
        expect.stringMatching(/^OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs/),
        expect.stringMatching(/^OTEL_TRACES_SAMPLER: "sometimes" is not offered/),
      ]),
    );
    // A header may hold a key: its value is not repeated.
    expect(issues.join('\n')).not.toContain('no-equals-sign-secret');
  });
});
