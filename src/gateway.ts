import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createFetch } from '@whatwg-node/fetch';
import { GraphQLError, NoSchemaIntrospectionCustomRule } from 'graphql';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { clientAddress } from './client-address.ts';
import type { LoadedConfig, Settings } from './config.ts';
import { anonymousViewer, createRequestContext, type RequestContext, type Viewer } from './context.ts';
import { openDatabases } from './db.ts';
import {
  asServiceUnavailable,
  ERROR_CODES,
  type ErrorCode,
  isDatabaseUnavailable,
  isUnstorableText,
  PorticoError,
  RETRY_AFTER_SECONDS,
  serviceUnavailable,
  unstorableText,
} from './errors.ts';
import { useSelfHostedGraphiQL } from './graphiql.ts';
import { LiveCredentials, useLiveStreams } from './live.ts';
import { createLogger, type Logger } from './logger.ts';
import type { PorticoModule } from './module.ts';
import { openPubSub, PUBSUB_ADAPTER_DESCRIPTIONS, pubSubAdapterFor } from './pubsub.ts';
import { CSRF_HEADERS, isForeignOrigin, Router } from './routes.ts';
import { type Clock, type Runtime, systemClock } from './runtime.ts';
import { buildSchema } from './schema.ts';
import { openStore, serveStore } from './store/open.ts';
import { useSuggestionMask } from './suggestions.ts';
import { useStorableText } from './text.ts';
import { useVariableCost } from './variable-cost.ts';
import { serveWebSocket } from './websocket.ts';

/**
 * SECURITY.md, "GraphQL surface". The cost is graphql-armor's (`first` multiplies a selection at
 * face value): the typed client's richest list operation costs about 15 000 at the contract's
 * largest page (100), which must pass; `first: 1000` on it costs ten times that.
 */
export const GRAPHQL_LIMITS = { depth: 10, aliases: 15, tokens: 2000, directives: 50, cost: 20_000 } as const;

/** Largest request body accepted: yoga's default, which multipart uploads need. */
export const MAX_REQUEST_BODY_BYTES = 25_000_000;

/**
 * Form-data limits of GraphQL multipart requests, which are parsed into memory: one file of at
 * most what the modules take (`multipartFileBytes`), and small text fields (`operations`, `map`).
 */
export function formDataLimits(modules: readonly PorticoModule[], settings: Settings) {
  const fileSize = Math.min(
    MAX_REQUEST_BODY_BYTES,
    Math.max(0, ...modules.map((module) => module.multipartFileBytes?.(settings) ?? 0)),
  );
  return {
    fileSize,
    files: fileSize > 0 ? 1 : 0,
    fields: 8,
    fieldSize: 1024 * 1024,
    fieldNameSize: 100,
    parts: 10,
    headerSize: 8 * 1024,
  };
}

export interface Gateway {
  readonly runtime: Runtime;
  readonly yoga: YogaServerInstance<NodeServerContext, RequestContext>;
  /** Handles one request without a listening server. */
  fetch(request: Request): Promise<Response>;
  /** Starts the HTTP server; resolves with its URL. */
  listen(port?: number, host?: string): Promise<string>;
  /**
   * Stops accepting, ends long waits, lets in-flight requests finish (up to `graceMs`), stops the
   * modules (each joins its background work), then closes the pub/sub and databases.
   */
  close(graceMs?: number): Promise<void>;
}

/** What Node's HTTP adapter passes along with each request. */
type NodeServerContext = { req?: IncomingMessage };

export interface GatewayOptions {
  log?: Logger;
  /** The time source of session timeouts and the like (tests move it). */
  clock?: Clock;
}

/** What aborts each runtime's `stopping` signal. */
const stoppers = new WeakMap<Runtime, AbortController>();

/**
 * Opens the databases (bringing their schemas up to date) and the pub/sub; starts no module.
 * `deferUnreachableStore`: see `openDatabases`.
 */
export async function openRuntime(
  config: LoadedConfig,
  log: Logger,
  clock: Clock = systemClock,
  { deferUnreachableStore = false } = {},
): Promise<Runtime> {
  const { env, settings, modules } = config;
  const db = await openDatabases({ env, modules, log, deferUnreachableStore });
  try {
    const pubsub = await openPubSub({ env, log });
    const stopper = new AbortController();
    const live = new LiveCredentials();
    const runtime: Runtime = {
      env,
      settings,
      modules,
      db,
      store: openStore(db, pubsub, log),
      pubsub,
      live,
      log,
      clock,
      stopping: stopper.signal,
    };
    stoppers.set(runtime, stopper);
    return runtime;
  } catch (error) {
    await db.close();
    throw error;
  }
}

/** Closes what `openRuntime` opened: the pub/sub (its last events go out), then the databases. */
export async function closeRuntime(runtime: Runtime): Promise<void> {
  stoppers.get(runtime)?.abort();
  try {
    await runtime.pubsub.close();
  } finally {
    await runtime.db.close();
  }
}

export async function createGateway(config: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const { env, modules } = config;
  const log = options.log ?? createLogger({ mode: env.mode });
  const development = env.mode === 'development';
  const schema = buildSchema(modules);
  // Identity keeps working while the store is away, also when it is away at start (HTTP.md).
  const runtime = await openRuntime(config, log, options.clock, { deferUnreachableStore: true });
  const pubsubAdapter = pubSubAdapterFor(env);
  log.info({ pubsub: pubsubAdapter }, `pub/sub: ${PUBSUB_ADAPTER_DESCRIPTIONS[pubsubAdapter]}`);
  // Ends of credentials may have been among the lost events: check the open streams' at once.
  runtime.pubsub.onGap(() => void runtime.live.recheckNow());
  try {
    for (const module of modules) await module.start?.(runtime);
    await serveStore(runtime.db, runtime.pubsub, log, async (store) => {
      for (const module of modules) await module.prepareStore?.(runtime, store);
    });
    // The modules' listeners hear other instances before the first request.
    await runtime.pubsub.ready();
  } catch (error) {
    await closeRuntime(runtime);
    throw error;
  }

  const resolveViewer = async (request: Request): Promise<Viewer> => {
    for (const module of modules) {
      const viewer = await module.credentials?.(request, runtime);
      if (viewer) return viewer;
    }
    return anonymousViewer;
  };

  // One context per request, shared by the GraphQL handler and the plain routes.
  const contexts = new WeakMap<Request, Promise<RequestContext>>();
  const contextFor = (request: Request, serverContext?: NodeServerContext): Promise<RequestContext> => {
    let context = contexts.get(request);
    if (!context) {
      const ip = clientAddress(serverContext?.req, runtime.env.trustedProxies);
      context = resolveViewer(request).then(
        (viewer) => createRequestContext(runtime, request, viewer, ip),
        (error: unknown) => {
          throw isDatabaseUnavailable(error) ? serviceUnavailable() : error;
        },
      );
      contexts.set(request, context);
    }
    return context;
  };
  const isAdmin = async (request: Request) => (await contextFor(request)).viewer.scopes.has('admin');
  // Each request's context once resolved (usePortico fills it): validation, which runs before Yoga
  // builds its context, reads the viewer here.
  const settled = new WeakMap<Request, RequestContext>();
  const costLimit = { maxCost: GRAPHQL_LIMITS.cost, exposeLimits: development };
  const liveStreams = useLiveStreams(runtime.live);

  const yoga = createYoga<NodeServerContext, RequestContext>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    // Replaced by useBodyLimit: yoga's own limit pipes every body through a TransformStream.
    maxRequestBodySize: false,
    fetchAPI: createFetch({ formDataLimits: formDataLimits(modules, config.settings) }),
    landingPage: false,
    // Other sites may call with an API key, never with the cookie (SECURITY.md: no credentialed CORS).
    cors: { credentials: false },
    context: ({ request, req }) => contextFor(request, { req }),
    // useSelfHostedGraphiQL serves it; Yoga's would load it from a CDN.
    graphiql: false,
    maskedErrors: {
      isDev: development,
      maskError(error, message, isDev) {
        const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
        if (isDatabaseUnavailable(original)) return serviceUnavailable();
        if (isUnstorableText(original)) return unstorableText();
        if (
          error instanceof GraphQLError &&
          (error.originalError === undefined || error.originalError instanceof GraphQLError)
        ) {
          return error;
        }
        log.error({ err: original }, 'unexpected error');
        return new GraphQLError(message, {
          extensions: {
            code: 'INTERNAL_SERVER_ERROR',
            ...(isDev
              ? {
                  originalError: { message: (original as Error)?.message, stack: (original as Error)?.stack },
                }
              : {}),
          },
        });
      },
    },
    logging: {
      debug: (...args) => log.debug(args.map(String).join(' ')),
      info: (...args) => log.info(args.map(String).join(' ')),
      warn: (...args) => log.warn(args.map(String).join(' ')),
      // Yoga logs each error that maskError replaced: an outage or refused text is an answer, not news.
      error: (...args) => {
        if (!args.some(isContractAnswer)) log.error(args.map(String).join(' '));
      },
    },
    plugins: [
      useSelfHostedGraphiQL({
        opensTo: async (request) => development || (await isAdmin(request).catch(() => false)),
      }),
      useCSRFPrevention({ requestHeaders: CSRF_HEADERS }),
      EnvelopArmorPlugin({
        maxDepth: { n: GRAPHQL_LIMITS.depth, exposeLimits: development },
        // `__typename` is allowed by default: its aliases would be free.
        maxAliases: { n: GRAPHQL_LIMITS.aliases, exposeLimits: development, allowList: [] },
        maxTokens: { n: GRAPHQL_LIMITS.tokens, exposeLimits: development },
        maxDirectives: { n: GRAPHQL_LIMITS.directives, exposeLimits: development },
        costLimit,
        // useSuggestionMask covers what this masks and more, and spares admins.
        blockFieldSuggestion: { enabled: false },
      }),
      useVariableCost(costLimit),
      useSuggestionMask({
        shows: (request) => development || settled.get(request)?.viewer.scopes.has('admin') === true,
      }),
      useBodyLimit(MAX_REQUEST_BODY_BYTES),
      useStorableText(),
      liveStreams,
      usePortico({
        runtime,
        contextFor,
        settled,
        router: new Router(modules.flatMap((m) => m.routes ?? [])),
      }),
    ],
  });

  let server: Server | undefined;
  let websocket: ReturnType<typeof serveWebSocket> | undefined;
  return {
    runtime,
    yoga,
    fetch: (request) => Promise.resolve(yoga.fetch(request)),
    listen(port = env.port, host = env.host) {
      server = createServer(yoga);
      // Slow clients cannot hold a connection open for free (SECURITY.md, Blobs).
      server.headersTimeout = 15_000;
      server.requestTimeout = 60_000;
      server.keepAliveTimeout = 5_000;
      websocket = serveWebSocket({ server, yoga, runtime, resolveViewer, formatResult: withContractCodes });
      const listening = server;
      return new Promise((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(port, host, () => {
          const { port: bound } = listening.address() as AddressInfo;
          resolve(`http://${host.includes(':') ? `[${host}]` : host}:${bound}`);
        });
      });
    },
    async close(graceMs = 10_000) {
      // Lease waits answer now; open subscriptions would hold the server open until the grace ran out.
      stoppers.get(runtime)?.abort();
      liveStreams.endAll();
      await websocket?.close();
      if (server) {
        const closing = server;
        const closed = new Promise<void>((resolve) => closing.close(() => resolve()));
        closing.closeIdleConnections();
        const timer = setTimeout(() => closing.closeAllConnections(), graceMs);
        await closed;
        clearTimeout(timer);
      }
      for (const module of [...modules].reverse()) await module.stop?.(runtime);
      await yoga.dispose();
      await closeRuntime(runtime);
    },
  };
}

interface PorticoPluginOptions {
  runtime: Runtime;
  router: Router;
  contextFor: (request: Request, serverContext?: NodeServerContext) => Promise<RequestContext>;
  /** Filled with each request's context as soon as it is resolved. */
  settled: WeakMap<Request, RequestContext>;
}

/** Readiness, module routes, introspection for admins, and response headers. */
function usePortico({ runtime, router, contextFor, settled }: PorticoPluginOptions): Plugin<RequestContext> {
  const development = runtime.env.mode === 'development';
  const track = async (request: Request, serverContext?: NodeServerContext) => {
    const context = await contextFor(request, serverContext);
    settled.set(request, context);
    return context;
  };
  return {
    async onRequest({ request, url, endResponse, serverContext }) {
      if (url.pathname === '/ready') {
        const up = await runtime.db.ping();
        const ready = up.system && up.store;
        endResponse(
          Response.json(
            { status: ready ? 'ready' : 'unavailable', databases: up },
            { status: ready ? 200 : 503 },
          ),
        );
        return;
      }
      if (url.pathname === '/graphql') {
        if (
          request.headers.get('accept')?.includes('text/event-stream') &&
          isForeignOrigin(request.headers.get('origin'), request.headers.get('host'), runtime.env.publicUrl)
        ) {
          endResponse(Response.json({ error: 'Cross-site subscriptions are refused.' }, { status: 403 }));
        }
        return;
      }
      const match = router.match(request.method, url.pathname);
      if (match === null) return;
      if (match === 'methodNotAllowed') {
        endResponse(Response.json({ error: 'method not allowed' }, { status: 405 }));
        return;
      }
      try {
        const context = await track(request, serverContext as NodeServerContext);
        // Cookies the handler set are added in onResponse, like those of GraphQL requests.
        endResponse(await match.route.handler(request, context, match.params));
      } catch (error) {
        endResponse(routeError(error, runtime));
      }
    },
    onContextBuilding({ context }) {
      settled.set(context.request, context as RequestContext);
    },
    onValidate({ addValidationRule, context }) {
      // Validation runs before the GraphQL context is built: use the one resolved at parse time.
      const viewer = settled.get((context as { request: Request }).request)?.viewer;
      if (!development && !viewer?.scopes.has('admin')) {
        addValidationRule(NoSchemaIntrospectionCustomRule);
      }
    },
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || Symbol.asyncIterator in result) return;
      setResult(withContractCodes(result));
    },
    onResponse({ request, response }) {
      // Once stopping, each answer closes its connection: Node's server would keep one that turns
      // idle after its close open until the client dropped it.
      if (runtime.stopping.aborted) response.headers.set('connection', 'close');
      const context = settled.get(request);
      if (!context) return;
      for (const [name, value] of context.response.headers) response.headers.append(name, value);
    },
    async onRequestParse({ request, serverContext }) {
      // Resolve the credential early so that an unavailable database answers 503 before parsing.
      await track(request, serverContext as NodeServerContext);
    },
  };
}

const CONTRACT_CODES = new Set<string>(ERROR_CODES);

/** An error maskError turns into a contract answer (SERVICE_UNAVAILABLE, BAD_USER_INPUT), not a bug. */
function isContractAnswer(error: unknown): boolean {
  const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  return isDatabaseUnavailable(original) || isUnstorableText(original);
}

function withContractCodes<R extends { errors?: readonly GraphQLError[] }>(result: R): R {
  return result.errors?.length ? { ...result, errors: result.errors.map(withContractCode) } : result;
}

/**
 * Every error leaves with one of the contract's codes. Parse, validation and limit
 * errors (no code, or Yoga's GRAPHQL_PARSE_FAILED) are the client's: BAD_USER_INPUT.
 */
function withContractCode(error: GraphQLError): GraphQLError {
  const code = error.extensions?.code;
  if (typeof code === 'string' && CONTRACT_CODES.has(code)) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: {
      ...error.extensions,
      // Yoga's name for a multipart file over the form-data limit.
      code:
        code === 'REQUEST_ENTITY_TOO_LARGE'
          ? 'PAYLOAD_TOO_LARGE'
          : error.path
            ? 'INTERNAL_SERVER_ERROR'
            : 'BAD_USER_INPUT',
    },
  });
}

function routeError(error: unknown, runtime: Runtime): Response {
  const unavailable = asServiceUnavailable(error);
  if (unavailable) {
    return Response.json(
      { error: unavailable.message, code: unavailable.code },
      { status: 503, headers: { 'retry-after': String(RETRY_AFTER_SECONDS) } },
    );
  }
  const refusal = isUnstorableText(error) ? unstorableText() : error;
  if (refusal instanceof PorticoError) {
    return Response.json(
      { error: refusal.message, code: refusal.code },
      { status: refusal.code === 'NOT_FOUND' ? 404 : 400 },
    );
  }
  runtime.log.error({ err: error }, 'route failed');
  return Response.json({ error: 'Internal server error' }, { status: 500 });
}

const bodyError = (message: string, status: number, code: ErrorCode) =>
  new GraphQLError(message, { extensions: { http: { status }, code } });

/**
 * The request body limit. Behind Node's HTTP server a valid Content-Length frames the body exactly,
 * so checking the header is enough; only a body without one (chunked, or an in-process Request)
 * is counted as it streams.
 */
function useBodyLimit(limit: number): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI, serverContext }) {
      const length = request.headers.get('content-length');
      if (length !== null) {
        if (!/^\d+$/.test(length))
          throw bodyError('Content-Length header is invalid.', 400, 'BAD_USER_INPUT');
        if (Number(length) > limit) throw bodyError('Request body too large', 413, 'PAYLOAD_TOO_LARGE');
        if ((serverContext as NodeServerContext | undefined)?.req) return;
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((req) => {
        const body = req.body;
        if (!body) return parse(req);
        const Transform =
          body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
        let read = 0;
        const limited = body.pipeThrough(
          new Transform({
            transform(chunk: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>) {
              read += chunk.byteLength;
              if (read > limit) {
                controller.error(bodyError('Request body too large', 413, 'PAYLOAD_TOO_LARGE'));
                return;
              }
              controller.enqueue(chunk);
            },
          }),
        );
        return parse(
          new fetchAPI.Request(req.url, {
            method: req.method,
            headers: req.headers,
            signal: req.signal,
            body: limited,
            duplex: 'half',
          } as RequestInit),
        );
      });
    },
  };
}
