import type { IncomingMessage } from 'node:http';
import {
  type Context,
  context,
  defaultTextMapGetter,
  type Span,
  SpanKind,
  type TextMapGetter,
} from '@opentelemetry/api';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import { type DocumentNode, type ExecutionResult, getOperationAST, Kind, print, visit } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { RequestContext } from '../context.ts';
import { type Route, routePatterns } from '../routes.ts';
import {
  type GatewayTracing,
  GRAPHQL_ATTRIBUTES,
  operationSpanIn,
  runInSpan,
  serverSpanIn,
  spanFailed,
  withOperationSpan,
  withServerSpan,
} from '../telemetry/tracing.ts';

export interface TracingOptions {
  tracing: GatewayTracing;
  /** The plain routes, whose patterns name the requests' spans. */
  routes: readonly Route[];
}

/** The methods the conventions name; any other is `_OTHER`. */
const KNOWN_METHODS = new Set([
  'CONNECT',
  'DELETE',
  'GET',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'POST',
  'PUT',
  'TRACE',
]);

/** A document longer than this is not copied into its operation's span. */
const MAX_DOCUMENT_LENGTH = 2048;

/** The name of an operation's span until its document is known (the conventions' words). */
const UNNAMED_OPERATION = 'GraphQL Operation';

const headersGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

/**
 * Traces (docs/observability.md, "Traces"): a SERVER span per HTTP request, named after its route
 * pattern, continuing an incoming `traceparent`; a span per GraphQL operation below it, named after
 * the operation's type and name. A WebSocket operation, which has no HTTP request of its own, gets
 * a SERVER span around its execution, continuing the upgrade request's `traceparent`. Each span's
 * context is the active one while its work runs, so statements, blob calls, publishes and calls to
 * a remote store nest below it, and log lines can name the trace.
 */
export function useTracing({ tracing, routes }: TracingOptions): Plugin<RequestContext> {
  const patternOf = routePatterns(routes);

  /** The operation's span, around `run`, when no HTTP request's operation span is open (WebSocket). */
  const standaloneOperation = (initial: object, run: () => Promise<void> | void) => {
    if (operationSpanIn(context.active())) return run();
    const upgrade = (initial as { req?: IncomingMessage }).req;
    const parent = tracing.incoming(upgrade?.headers ?? {}, defaultTextMapGetter);
    const span = tracing.tracer.startSpan(UNNAMED_OPERATION, { kind: SpanKind.SERVER }, parent);
    return runInSpan(withOperationSpan(parent, span), span, run);
  };

  return {
    instrumentation: {
      request({ request }, wrapped) {
        const url = new URL(request.url);
        const route = patternOf(url.pathname);
        const known = KNOWN_METHODS.has(request.method);
        const parent = tracing.incoming(request.headers, headersGetter);
        const span = tracing.tracer.startSpan(
          route ? `${request.method} ${route}` : known ? request.method : 'HTTP',
          {
            kind: SpanKind.SERVER,
            attributes: {
              [ATTR_HTTP_REQUEST_METHOD]: known ? request.method : '_OTHER',
              ...(known ? {} : { [ATTR_HTTP_REQUEST_METHOD_ORIGINAL]: request.method }),
              [ATTR_URL_PATH]: url.pathname,
              [ATTR_URL_SCHEME]: url.protocol.slice(0, -1),
              [ATTR_SERVER_ADDRESS]: url.hostname,
              [ATTR_SERVER_PORT]: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
              ...(route ? { [ATTR_HTTP_ROUTE]: route } : {}),
              ...userAgent(request),
            },
          },
          parent,
        );
        return runInSpan(withServerSpan(parent, span), span, wrapped);
      },
      operation(_payload, wrapped) {
        const parent = context.active();
        const span = tracing.tracer.startSpan(UNNAMED_OPERATION, { kind: SpanKind.INTERNAL }, parent);
        return runInSpan(withOperationSpan(parent, span), span, wrapped);
      },
      execute: ({ context: initial }, wrapped) => standaloneOperation(initial, wrapped),
      subscribe: ({ context: initial }, wrapped) => standaloneOperation(initial, wrapped),
    },
    onResponse({ response }) {
      const span = serverSpanIn(context.active());
      if (!span) return;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, response.status);
      if (response.status >= 500) spanFailed(span, undefined, String(response.status));
    },
    onExecute({ args }) {
      describeOperation(context.active(), args.document, args.operationName);
      return {
        onExecuteDone({ result }) {
          if (!isAsyncIterable(result)) recordErrors(context.active(), result);
        },
      };
    },
    onSubscribe({ args }) {
      describeOperation(context.active(), args.document, args.operationName);
    },
    // Also the refusals before execution (parsing, validation, limits), which onExecuteDone never sees.
    onExecutionResult({ result }) {
      if (result && !isAsyncIterable(result)) recordErrors(context.active(), result);
    },
  };
}

function userAgent(request: Request) {
  const agent = request.headers.get('user-agent');
  return agent ? { [ATTR_USER_AGENT_ORIGINAL]: agent } : {};
}

/** Names the operation's span after its type and name (`query Viewer`), with its document when small. */
function describeOperation(active: Context, document: DocumentNode, operationName?: string | null) {
  const span = operationSpanIn(active);
  if (!span) return;
  const operation = getOperationAST(document, operationName);
  if (!operation) return;
  const name = operation.name?.value;
  span.updateName(name ? `${operation.operation} ${name}` : operation.operation);
  span.setAttribute(GRAPHQL_ATTRIBUTES.type, operation.operation);
  if (name) span.setAttribute(GRAPHQL_ATTRIBUTES.name, name);
  const text = documentText(document);
  if (text !== undefined) span.setAttribute(GRAPHQL_ATTRIBUTES.document, text);
}

/** Yoga parses each distinct query once: its documents are reused, and so is their text here. */
const documentTexts = new WeakMap<DocumentNode, string | undefined>();

/**
 * The document as text with every string literal replaced by "?" (a password written into a
 * query must not reach a trace); undefined when its source is long.
 */
function documentText(document: DocumentNode): string | undefined {
  if (documentTexts.has(document)) return documentTexts.get(document);
  const length = document.loc?.source.body.length ?? 0;
  const text =
    length === 0 || length > MAX_DOCUMENT_LENGTH
      ? undefined
      : print(visit(document, { StringValue: () => ({ kind: Kind.STRING, value: '?' }) }));
  documentTexts.set(document, text);
  return text;
}

/** An operation that answered errors is a failed span; `error.type` is the first error's code. */
function recordErrors(active: Context, result: ExecutionResult) {
  const span: Span | undefined = operationSpanIn(active);
  const first = result.errors?.[0];
  if (!span || !first) return;
  spanFailed(span, undefined, String(first.extensions?.code ?? 'GraphQLError'));
}
