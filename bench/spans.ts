/**
 * `npm run bench:spans`: what the OpenTelemetry SDK itself costs per traced request, outside any
 * server: the two spans of a request like `viewer` (the HTTP SERVER span with its attributes and
 * the operation's span below it) started and ended through a BatchSpanProcessor, and their export
 * serialized as OTLP protobuf. This is the floor under the "tracing on" row of
 * `npm run bench:observability`. BENCH_REQUESTS (default 50000) sets the count.
 */
import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  type ReadableSpan,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { positive } from './portico.ts';

const REQUESTS = positive('BENCH_REQUESTS', 50_000);
const ROUNDS = 5;

let exported: ReadableSpan[][] = [];
const provider = new TracerProvider({
  sampler: new AlwaysOnSampler(),
  spanProcessors: [
    new BatchSpanProcessor({
      exporter: {
        export(spans, done) {
          exported.push(spans);
          done({ code: 0 });
        },
        shutdown: async () => {},
      },
      // Nothing dropped: every span of the run is kept for the serializing half.
      maxQueueSize: 2 * REQUESTS * 2,
    }),
  ],
});
const tracer = provider.getTracer('portico-bench');
const requestAttributes = {
  'http.request.method': 'POST',
  'url.path': '/graphql',
  'url.scheme': 'http',
  'server.address': '127.0.0.1',
  'server.port': 4000,
  'http.route': '/graphql',
  'user_agent.original': 'autocannon',
};

/** The spans of one request, as src/plugins/use-tracing.ts makes them. */
function request() {
  const server = tracer.startSpan('POST /graphql', { kind: SpanKind.SERVER, attributes: requestAttributes });
  const inside = trace.setSpan(ROOT_CONTEXT, server);
  context.with(inside, () => {
    const operation = tracer.startSpan('GraphQL Operation', { kind: SpanKind.INTERNAL }, inside);
    operation.updateName('query Viewer');
    operation.setAttribute('graphql.operation.type', 'query');
    operation.setAttribute('graphql.operation.name', 'Viewer');
    operation.setAttribute('graphql.document', '{ viewer { user { id email } } }');
    operation.end();
  });
  server.setAttribute('http.response.status_code', 200);
  server.end();
}

const microseconds = (start: number) => ((performance.now() - start) * 1000) / REQUESTS;
const spansRuns: number[] = [];
const serializeRuns: number[] = [];
for (let round = 0; round <= ROUNDS; round++) {
  exported = [];
  let start = performance.now();
  for (let index = 0; index < REQUESTS; index++) request();
  await provider.forceFlush();
  const spans = microseconds(start);
  const batches = exported;
  start = performance.now();
  for (const batch of batches) ProtobufTraceSerializer.serializeRequest(batch);
  const serialize = microseconds(start);
  // The first round warms the JIT up.
  if (round > 0) {
    spansRuns.push(spans);
    serializeRuns.push(serialize);
  }
}
await provider.shutdown();
const spread = (runs: number[]) =>
  `${(runs.reduce((sum, run) => sum + run, 0) / runs.length).toFixed(1)} µs (${Math.min(...runs).toFixed(1)}–${Math.max(...runs).toFixed(1)})`;
console.log(
  `OpenTelemetry SDK, Node ${process.version}, ${REQUESTS} requests of two spans, ${ROUNDS} rounds:`,
);
console.log(`  start and end both spans, per request: ${spread(spansRuns)}`);
console.log(`  serialize them as OTLP protobuf, per request: ${spread(serializeRuns)}`);
