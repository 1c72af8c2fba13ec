import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createFetch } from '@whatwg-node/fetch';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import { clientAddress } from './client-address.ts';
import { createRequestContext, type RequestContext } from './context.ts';
import { isDatabaseUnavailable, serviceUnavailable } from './errors.ts';
import { databasesHealth } from './health.ts';
import type { LoadedConfig } from './load-config.ts';
import { createLogger, type Logger } from './logger.ts';
import { beginStopping, closeRuntime, openRuntime } from './open-runtime.ts';
import { formDataLimits, useBodyLimit } from './plugins/use-body-limit.ts';
import { useClosingConnections } from './plugins/use-closing-connections.ts';
import {
  contractLogger,
  maskToContract,
  useContractCodes,
  withContractCodes,
} from './plugins/use-contract-codes.ts';
import { useFavicon } from './plugins/use-favicon.ts';
import { useSelfHostedGraphiQL } from './plugins/use-graphiql.ts';
import { useIntrospectionGate } from './plugins/use-introspection-gate.ts';
import { useLiveStreams } from './plugins/use-live-streams.ts';
import { useHttpMetrics, useOperationMetrics } from './plugins/use-metrics.ts';
import { useMetricsEndpoint } from './plugins/use-metrics-endpoint.ts';
import { useOperationLimits } from './plugins/use-operation-limits.ts';
import { useReadiness } from './plugins/use-readiness.ts';
import { RequestContextCache, useRequestContext } from './plugins/use-request-context.ts';
import { useRequestId } from './plugins/use-request-id.ts';
import { useResponseCookies } from './plugins/use-response-cookies.ts';
import { useRoutes } from './plugins/use-routes.ts';
import { useSseOriginCheck } from './plugins/use-sse-origin.ts';
import { useStorableText } from './plugins/use-storable-text.ts';
import { useSuggestionMask } from './plugins/use-suggestion-mask.ts';
import { useTracing } from './plugins/use-tracing.ts';
import { PUBSUB_ADAPTER_DESCRIPTIONS, pubSubAdapterFor } from './pubsub/open.ts';
import { CSRF_HEADERS } from './routes.ts';
import type { Runtime } from './runtime.ts';
import { buildSchema } from './schema.ts';
import type { NodeServerContext } from './server-context.ts';
import { REQUEST_ID_HEADER } from './telemetry/request-scope.ts';
import { type GatewayTracing, startTracing } from './telemetry/tracing.ts';
import { WorkerMetrics } from './telemetry/worker-metrics.ts';
import type { Clock } from './timers.ts';
import { anonymousViewer } from './viewer.ts';
import { serveWebSocket } from './websocket.ts';

export interface Gateway {
  readonly runtime: Runtime;
  readonly yoga: YogaServerInstance<NodeServerContext, RequestContext>;
  /** This gateway's traces (`OTEL_*`); null when tracing is off. */
  readonly tracing: GatewayTracing | null;
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

export interface GatewayOptions {
  /** Made by `createLogger`, whose lines carry the request id and trace of the work that wrote them. */
  log?: Logger;
  /** The time source of session timeouts and the like (tests move it). */
  clock?: Clock;
}

/** The gateway of `config`, its modules composed (`composeModules`): started, not yet listening. */
export async function createGateway(config: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const { env, modules } = config;
  const log = options.log ?? createLogger({ mode: env.mode });
  const development = env.mode === 'development';
  const schema = buildSchema(modules);
  // Identity keeps working while the store is away, also when it is away at start (docs/operations.md).
  const runtime = await openRuntime(config, log, options.clock, { deferUnreachableStore: true });
  const pubsubAdapter = pubSubAdapterFor(env);
  log.info({ pubsub: pubsubAdapter }, `pub/sub: ${PUBSUB_ADAPTER_DESCRIPTIONS[pubsubAdapter]}`);
  // Ends of credentials may have been among the lost events: check the open streams' at once.
  runtime.pubsub.onGap(() => void runtime.live.recheckNow());
  try {
    await runtime.instances.start();
    await runtime.serveStore();
    // The modules' listeners hear other instances before the first request.
    await runtime.pubsub.ready();
  } catch (error) {
    await closeRuntime(runtime);
    throw error;
  }
  // Its own provider: another gateway in the process may trace elsewhere, or not at all.
  const tracing = env.tracing ? await startTracing(env.tracing, log) : null;

  const credentials = runtime.instances.credentials;
  /** The request's context; its viewer is the first that a credential resolver finds on it. */
  const resolveContext = async (request: Request, ip: string | null): Promise<RequestContext> => {
    const context = createRequestContext(runtime, request, anonymousViewer, ip);
    for (const resolve of credentials) {
      const viewer = await resolve(context);
      if (viewer) {
        context.viewer = viewer;
        break;
      }
    }
    return context;
  };
  const resolveViewer = async (request: Request) => (await resolveContext(request, null)).viewer;

  // One context per request, shared by the GraphQL handler, the plain routes and the plugins.
  const contexts = new RequestContextCache((request, serverContext) =>
    resolveContext(request, clientAddress(serverContext?.req, runtime.env.trustedProxies)).catch(
      (error: unknown) => {
        throw isDatabaseUnavailable(error) ? serviceUnavailable() : error;
      },
    ),
  );

  // Admins see the schema (GraphiQL, introspection, suggestions), and everyone in development mode.
  const isAdmin = (context: RequestContext | undefined) => context?.viewer.scopes.has('admin') === true;
  const seesSchema = (request: Request) => development || isAdmin(contexts.ready(request));
  const liveStreams = useLiveStreams({ live: runtime.live });
  // A worker of `start --workers` answers a scrape with every worker's counters, and its own to the others'.
  const workerMetrics =
    env.metricsToken && env.worker !== undefined ? new WorkerMetrics(runtime.metrics.registry) : undefined;
  const yoga = createYoga<NodeServerContext, RequestContext>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    // Replaced by useBodyLimit: yoga's own limit pipes every body through a TransformStream.
    maxRequestBodySize: false,
    fetchAPI: createFetch({ formDataLimits: formDataLimits(modules, config.settings) }),
    landingPage: false,
    // Other sites may call with an API key, never with the cookie (docs/security.md: no credentialed CORS).
    cors: { credentials: false, exposedHeaders: [REQUEST_ID_HEADER] },
    // useSelfHostedGraphiQL serves it; Yoga's would load it from a CDN.
    graphiql: false,
    maskedErrors: { isDev: development, maskError: maskToContract(log) },
    logging: contractLogger(log),
    plugins: [
      // The request id wraps everything the others do, the request span included.
      useRequestId(),
      // Its request span is the one every other plugin's work runs in.
      ...(tracing ? [useTracing({ tracing, routes: runtime.instances.routes })] : []),
      // It times the answers of the plugins that end a request early.
      useHttpMetrics({ metrics: runtime.metrics, routes: runtime.instances.routes }),
      useSelfHostedGraphiQL({
        opensTo: async (request) => development || isAdmin(await contexts.of(request).catch(() => undefined)),
      }),
      useSseOriginCheck({ publicUrl: env.publicUrl }),
      // Off (404) without a token.
      ...(env.metricsToken
        ? [
            useMetricsEndpoint({
              registry: runtime.metrics.registry,
              token: env.metricsToken,
              gather: workerMetrics && (() => workerMetrics.gather()),
            }),
          ]
        : []),
      useRoutes({
        routes: runtime.instances.routes,
        contextOf: (request, serverContext) => contexts.of(request, serverContext),
        log,
      }),
      useReadiness({ health: () => databasesHealth(runtime.db, runtime.store) }),
      useFavicon(),
      useCSRFPrevention({ requestHeaders: CSRF_HEADERS }),
      useOperationLimits({ exposeLimits: development }),
      useSuggestionMask({ shows: seesSchema }),
      useBodyLimit(),
      useStorableText(),
      liveStreams,
      // After CSRF prevention and the body limit, whose refusals come before the credential check.
      useRequestContext({ contexts }),
      useIntrospectionGate({ opensTo: seesSchema }),
      useContractCodes(),
      // After useContractCodes: it counts the codes results leave with.
      useOperationMetrics({ metrics: runtime.metrics }),
      useResponseCookies({ responseOf: (request) => contexts.ready(request)?.response }),
      useClosingConnections({ stopping: runtime.stopping }),
    ],
  });

  let server: Server | undefined;
  let websocket: ReturnType<typeof serveWebSocket> | undefined;
  return {
    runtime,
    yoga,
    tracing,
    fetch: (request) => Promise.resolve(yoga.fetch(request)),
    listen(port = env.port, host = env.host) {
      server = createServer(yoga);
      // Slow clients cannot hold a connection open for free (docs/security.md).
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
      beginStopping(runtime);
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
      await runtime.instances.stop();
      workerMetrics?.close();
      await yoga.dispose();
      try {
        await closeRuntime(runtime);
      } finally {
        await tracing?.shutdown();
      }
    },
  };
}
