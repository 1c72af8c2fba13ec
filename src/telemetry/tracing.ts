import { randomUUID } from 'node:crypto';
import {
  type Attributes,
  type Context,
  context,
  createContextKey,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import type { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { ReadableSpan, SpanExporter, TracerProvider } from '@opentelemetry/sdk-trace';
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_URL_FULL,
} from '@opentelemetry/semantic-conventions';
import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub.ts';
import type { BlobStorage } from '../store/blob-storage.ts';
import { outsideRequests } from './request-scope.ts';
import type { TracingSettings } from './tracing-settings.ts';

/**
 * OpenTelemetry traces, one tracer provider per gateway (several run in one process in tests,
 * each with its own settings; none is registered globally). A request's context carries its
 * gateway's tracing: every child span (statements, blob storage, publishes, calls to a remote
 * store) finds it there, so with tracing off, or outside a request, a child costs one lookup.
 */

// Incubating conventions, copied as the semantic-conventions package advises rather than imported.
const ATTR_GRAPHQL_OPERATION_TYPE = 'graphql.operation.type';
const ATTR_GRAPHQL_OPERATION_NAME = 'graphql.operation.name';
const ATTR_GRAPHQL_DOCUMENT = 'graphql.document';
const ATTR_MESSAGING_SYSTEM = 'messaging.system';
const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';

export const GRAPHQL_ATTRIBUTES = {
  type: ATTR_GRAPHQL_OPERATION_TYPE,
  name: ATTR_GRAPHQL_OPERATION_NAME,
  document: ATTR_GRAPHQL_DOCUMENT,
} as const;

/** The tracing of the gateway whose request the context belongs to. */
const TRACING = createContextKey('portico tracing');
/** The request's own span (the HTTP server span). */
const SERVER_SPAN = createContextKey('portico server span');
/** The GraphQL operation's span, under the request's. */
const OPERATION_SPAN = createContextKey('portico operation span');

/** A gateway's tracer provider and what its spans need. */
export class GatewayTracing {
  readonly tracer: Tracer;
  readonly #provider: TracerProvider;
  readonly #propagator: TextMapPropagator;
  readonly #release: () => void;

  constructor(provider: TracerProvider, propagator: TextMapPropagator, release: () => void) {
    this.#provider = provider;
    this.tracer = provider.getTracer('portico');
    this.#propagator = propagator;
    this.#release = release;
  }

  /**
   * The context of a request that arrived with `carrier`'s headers: the trace of its `traceparent`
   * continued (a new trace without one), this gateway's spans below it. Never the caller's active
   * context: a request is a root, whatever ran before it in this process.
   */
  incoming<Carrier>(carrier: Carrier, getter: TextMapGetter<Carrier>): Context {
    return this.#propagator.extract(ROOT_CONTEXT, carrier, getter).setValue(TRACING, this);
  }

  /** Sends the spans ended so far; rejects when the collector does not take them. */
  forceFlush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /**
   * Sends the last spans and stops (the gateway closes). A collector that does not take them does
   * not fail the close: the exporter has logged it.
   */
  async shutdown(): Promise<void> {
    try {
      await this.#provider.shutdown();
    } catch {
      // Logged by `reportingFailures`.
    } finally {
      this.#release();
    }
  }

  /** `traceparent` (and `tracestate`) of `span` for a call out. */
  headersOf(active: Context, span: Span): Record<string, string> {
    const headers: Record<string, string> = {};
    this.#propagator.inject(trace.setSpan(active, span), headers, {
      set: (carrier, key, value) => {
        carrier[key] = value;
      },
    });
    return headers;
  }
}

/** The tracing of the request the active context belongs to; undefined outside one, or with tracing off. */
export const activeTracing = (active: Context = context.active()) =>
  active.getValue(TRACING) as GatewayTracing | undefined;

export const withServerSpan = (active: Context, span: Span) =>
  trace.setSpan(active, span).setValue(SERVER_SPAN, span);
export const serverSpanIn = (active: Context) => active.getValue(SERVER_SPAN) as Span | undefined;
export const withOperationSpan = (active: Context, span: Span) =>
  trace.setSpan(active, span).setValue(OPERATION_SPAN, span);
export const operationSpanIn = (active: Context) => active.getValue(OPERATION_SPAN) as Span | undefined;

/** Marks a span failed: its status, `error.type`, and the exception as an event. */
export function spanFailed(span: Span, error: unknown, type?: string) {
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.setAttribute(ATTR_ERROR_TYPE, type ?? errorType(error));
  if (error instanceof Error) span.recordException(error);
}

const errorType = (error: unknown) =>
  (error as { code?: unknown })?.code !== undefined
    ? String((error as { code: unknown }).code)
    : error instanceof Error
      ? error.name
      : '_OTHER';

/** Runs `run` in the context of `span` and ends the span with it, failed if `run` throws. */
export async function runInSpan<T>(active: Context, span: Span, run: () => Promise<T> | T): Promise<T> {
  try {
    return await context.with(active, run);
  } catch (error) {
    spanFailed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Gateways with tracing on: they share the process's context manager, installed by the first. */
let tracingGateways = 0;
let installedContextManager: { disable(): unknown } | undefined;

/**
 * Starts a gateway's tracing: its tracer provider with a batch span processor and the OTLP/HTTP
 * exporter of `settings`, and, for the first such gateway in the process, the AsyncLocalStorage
 * context manager (a request's context reaches every await below it). The SDK is loaded here only:
 * with tracing off none of it is.
 */
export async function startTracing(settings: TracingSettings, log: Logger): Promise<GatewayTracing> {
  const [
    sdk,
    { defaultResource, resourceFromAttributes },
    core,
    { AsyncLocalStorageContextManager },
    exporters,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    import('@opentelemetry/context-async-hooks'),
    settings.protocol === 'http/json'
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  // The log shows where spans go, never a password in the URL.
  const shownUrl = new URL(settings.url);
  shownUrl.username = '';
  shownUrl.password = '';
  const exporter = reportingFailures(
    new exporters.OTLPTraceExporter({
      url: settings.url,
      headers: settings.headers,
      timeoutMillis: settings.timeoutMs,
      compression: settings.compression as ExporterOptions['compression'],
    }),
    (result) => result.code === core.ExportResultCode.SUCCESS,
    log,
    shownUrl.href,
  );
  const roots = {
    always_on: new sdk.AlwaysOnSampler(),
    always_off: new sdk.AlwaysOffSampler(),
    traceidratio: new sdk.TraceIdRatioBasedSampler(settings.samplerRatio),
  };
  const root = roots[settings.sampler.replace(/^parentbased_/, '') as keyof typeof roots];
  const provider = new sdk.TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({
        // Unique per gateway (the specification's advice), so that two instances of one service differ.
        [ATTR_SERVICE_INSTANCE_ID]: randomUUID(),
        ...settings.resourceAttributes,
        [ATTR_SERVICE_NAME]: settings.serviceName,
      }),
    ),
    sampler: settings.sampler.startsWith('parentbased_') ? new sdk.ParentBasedSampler({ root }) : root,
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter, ...definedOnly(settings.batch) })],
  });

  if (tracingGateways++ === 0) {
    const manager = new AsyncLocalStorageContextManager().enable();
    // Another library's manager, registered before, serves as well; it stays theirs.
    if (context.setGlobalContextManager(manager)) installedContextManager = manager;
    else manager.disable();
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (--tracingGateways === 0 && installedContextManager) {
      context.disable();
      installedContextManager = undefined;
    }
  };
  log.info(
    { traces: shownUrl.href, protocol: settings.protocol, sampler: settings.sampler },
    `traces: exported over OTLP/HTTP (${settings.protocol}) as ${settings.serviceName}`,
  );
  return new GatewayTracing(provider, new core.W3CTraceContextPropagator(), release);
}

type ExporterOptions = NonNullable<ConstructorParameters<typeof OTLPTraceExporter>[0]>;

const definedOnly = <T extends object>(options: T) =>
  Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;

/** The exporter, logging when the collector stops taking spans (once) and when it takes them again. */
function reportingFailures(
  exporter: SpanExporter,
  succeeded: (result: ExportResult) => boolean,
  log: Logger,
  url: string,
): SpanExporter {
  let failing = false;
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      // The batch's timer may have been set by a request: its log lines are not that request's.
      outsideRequests(() =>
        exporter.export(spans, (result) => {
          if (!succeeded(result) && !failing) {
            failing = true;
            log.warn(
              { err: result.error, traces: url },
              'traces: the collector does not take spans; they are dropped',
            );
          } else if (succeeded(result) && failing) {
            failing = false;
            log.info({ traces: url }, 'traces: the collector takes spans again');
          }
          done(result);
        }),
      );
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/**
 * A child span of the active context's, when it belongs to a traced request; `describe` runs only then.
 */
function childSpan(kind: SpanKind, describe: () => { name: string; attributes: Attributes }) {
  const active = context.active();
  const tracing = activeTracing(active);
  if (!tracing) return undefined;
  const { name, attributes } = describe();
  const span = tracing.tracer.startSpan(name, { kind, attributes }, active);
  return { tracing, active, span };
}

/** An SQL statement's first keyword. */
const KEYWORD = /^\s*(\w+)/;
/** The table a statement names first, by its keyword. */
const TABLE: Record<string, RegExp> = {
  SELECT: /\bfrom\s+["`]?([\w.]+)/i,
  INSERT: /^\s*insert\s+into\s+["`]?([\w.]+)/i,
  UPDATE: /^\s*update\s+["`]?([\w.]+)/i,
  DELETE: /^\s*delete\s+from\s+["`]?([\w.]+)/i,
};

/**
 * The span of one SQL statement (CLIENT, named after its operation and table: `SELECT users`),
 * when the active context is a traced request's: the returned function ends it, failed when given
 * an error (its first call counts). Undefined otherwise. The text is the statement with
 * placeholders: values are never in it (src/bound-sql.ts).
 */
export function statementSpan(system: 'sqlite' | 'postgresql', sql: string) {
  const child = childSpan(SpanKind.CLIENT, () => {
    const operation = KEYWORD.exec(sql)?.[1]?.toUpperCase();
    const table = operation === undefined ? undefined : TABLE[operation]?.exec(sql)?.[1];
    const summary = table ? `${operation} ${table}` : operation;
    return {
      name: summary ?? system,
      attributes: {
        [ATTR_DB_SYSTEM_NAME]: system,
        [ATTR_DB_QUERY_TEXT]: sql,
        ...(operation ? { [ATTR_DB_OPERATION_NAME]: operation, [ATTR_DB_QUERY_SUMMARY]: summary } : {}),
        ...(table ? { [ATTR_DB_COLLECTION_NAME]: table } : {}),
      },
    };
  });
  if (!child) return undefined;
  let ended = false;
  return (error?: unknown) => {
    if (ended) return;
    ended = true;
    if (error !== undefined) spanFailed(child.span, error);
    child.span.end();
  };
}

/** `run` (one statement) in its span, when the active context is a traced request's. */
export function traceStatement<T>(system: 'sqlite' | 'postgresql', sql: string, run: () => Promise<T>) {
  const end = statementSpan(system, sql);
  if (!end) return run();
  return run().then(
    (result) => {
      end();
      return result;
    },
    (error: unknown) => {
      end(error);
      throw error;
    },
  );
}

/**
 * An HTTP call to another service (a remote store) as a CLIENT span, when the active context is a
 * traced request's: `send` gets the headers that carry the trace on (`traceparent`); undefined otherwise.
 * The span ends with the response's headers.
 */
export function traceHttpCall<R extends { statusCode?: number }>(
  method: string,
  url: URL,
  send: (headers: Record<string, string> | undefined) => Promise<R>,
): Promise<R> {
  const child = childSpan(SpanKind.CLIENT, () => ({
    name: method,
    attributes: {
      [ATTR_HTTP_REQUEST_METHOD]: method,
      // Neither credentials nor the query: only where the call went.
      [ATTR_URL_FULL]: `${url.origin}${url.pathname}`,
      [ATTR_SERVER_ADDRESS]: url.hostname,
      [ATTR_SERVER_PORT]: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
    },
  }));
  if (!child) return send(undefined);
  const { tracing, active, span } = child;
  return send(tracing.headersOf(active, span)).then(
    (response) => {
      const status = response.statusCode ?? 0;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (status >= 400) spanFailed(span, undefined, String(status));
      span.end();
      return response;
    },
    (error: unknown) => {
      spanFailed(span, error);
      span.end();
      throw error;
    },
  );
}

/** The pub/sub, each publish a PRODUCER span of the request that makes it. */
export function tracePublishes(pubsub: PubSub, system: string): PubSub {
  return {
    publish(topic, payload) {
      const child = childSpan(SpanKind.PRODUCER, () => ({
        name: `publish ${topic}`,
        attributes: {
          [ATTR_MESSAGING_SYSTEM]: system,
          [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
          [ATTR_MESSAGING_OPERATION_NAME]: 'publish',
          [ATTR_MESSAGING_DESTINATION_NAME]: topic,
        },
      }));
      try {
        pubsub.publish(topic, payload);
      } finally {
        child?.span.end();
      }
    },
    subscribe: (topic) => pubsub.subscribe(topic),
    on: (topic, listener) => pubsub.on(topic, listener),
    onGap: (listener) => pubsub.onGap(listener),
    ready: () => pubsub.ready(),
    close: () => pubsub.close(),
  };
}

/**
 * The blob storage driver, each call a span of the request that makes it (`blob stage`, `blob
 * read`, …), the driver's own work (a database driver's statements) below it. The listing of
 * `contents`, which only the background sweep makes, is passed through.
 */
export function traceBlobStorage(storage: BlobStorage): BlobStorage {
  const traced =
    <Args extends unknown[], R>(
      name: string,
      call: (...args: Args) => Promise<R>,
      address?: (...args: Args) => string,
    ) =>
    (...args: Args): Promise<R> => {
      const child = childSpan(SpanKind.INTERNAL, () => ({
        name: `blob ${name}`,
        attributes: address ? { 'portico.blob.sha256': address(...args) } : {},
      }));
      if (!child) return call(...args);
      return runInSpan(trace.setSpan(child.active, child.span), child.span, () => call(...args));
    };
  return {
    stage: traced('stage', (source, maxBytes, options) => storage.stage(source, maxBytes, options)),
    commit: traced(
      'commit',
      (staged) => storage.commit(staged),
      (staged) => staged.sha256,
    ),
    discard: traced('discard', (staged) => storage.discard(staged)),
    exists: traced(
      'exists',
      (sha256) => storage.exists(sha256),
      (sha256) => sha256,
    ),
    read: traced(
      'read',
      (sha256, range, signal) => storage.read(sha256, range, signal),
      (sha256) => sha256,
    ),
    delete: traced(
      'delete',
      (sha256) => storage.delete(sha256),
      (sha256) => sha256,
    ),
    sweep: traced('sweep', (olderThan) => storage.sweep(olderThan)),
    contents: (olderThan) => storage.contents(olderThan),
  };
}
