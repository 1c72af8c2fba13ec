import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type ExecutionArgs, GraphQLError } from 'graphql';
import { CloseCode, type Context, type OperationResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { isAsyncIterable, type YogaServerInstance } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import type { RequestContext } from './context.ts';
import { asServiceUnavailable, remadeError } from './errors.ts';
import { credentialOf } from './live.ts';
import { withRequestId } from './plugins/use-request-id.ts';
import { isForeignOrigin } from './routes.ts';
import type { Runtime } from './runtime.ts';
import {
  inRequestScope,
  newRequestId,
  pulledHere,
  REQUEST_ID_HEADER,
  requestIdFor,
} from './telemetry/request-scope.ts';
import type { Viewer } from './viewer.ts';

/** Limits of the graphql-ws transport. */
export const WEBSOCKET_LIMITS = {
  /** Largest message a client may send (a subscribe with its query and variables). */
  messageBytes: 64 * 1024,
  /** A connection must send connection_init within this time. */
  initWaitMs: 3_000,
  /** Operations running at once on one connection. */
  operationsPerConnection: 100,
} as const;

/** The WebSocket close code for a server that cannot serve now (RFC 6455 registry: Try Again Later). */
const TRY_AGAIN_LATER = 1013;

// After a credential ends, its streams get this long to send their last events before the close.
const CLOSE_DEADLINE_MS = 1_000;

type ConnectionState = {
  socket: WebSocket;
  request: IncomingMessage;
  /** The credential the connection was opened with; the connection ends with it. */
  viewer?: Viewer;
  ending?: boolean;
  untrack?: () => void;
};

type WsContext = Context<Record<string, unknown> | undefined, ConnectionState>;

export interface WebSocketOptions {
  server: Server;
  yoga: YogaServerInstance<{ req?: IncomingMessage }, RequestContext>;
  runtime: Runtime;
  resolveViewer: (request: Request) => Promise<Viewer>;
  /** Gives a result's errors the contract's codes, as HTTP responses have them. */
  formatResult: <R extends { errors?: readonly GraphQLError[] }>(result: R) => R;
}

/**
 * GraphQL over WebSocket (graphql-transport-ws) on the HTTP server's /graphql. The upgrade is
 * refused for another site's Origin; the credential is the cookie sent with the upgrade or
 * `connectionParams.authorization = "Bearer <api key>"`, checked again at every subscribe; when
 * it ends, the connection's streams end and the socket closes with 4403.
 */
export function serveWebSocket({ server, yoga, runtime, resolveViewer, formatResult }: WebSocketOptions) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: WEBSOCKET_LIMITS.messageBytes });
  /** The id of each connection's upgrade request: in its 101 answer and its handshake's log lines. */
  const connectionIds = new WeakMap<IncomingMessage, string>();
  wss.on('headers', (headers, request) =>
    headers.push(`${REQUEST_ID_HEADER}: ${connectionIds.get(request)}`),
  );

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const requestId = requestIdFor(request.headers[REQUEST_ID_HEADER] as string | undefined);
    const { pathname } = new URL(request.url ?? '/', 'http://localhost');
    if (pathname !== '/graphql') return refuse(socket, 404, 'Not Found', requestId);
    if (isForeignOrigin(request.headers.origin, request.headers.host, runtime.env.publicUrl)) {
      return refuse(socket, 403, 'Forbidden', requestId);
    }
    connectionIds.set(request, requestId);
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  };
  server.on('upgrade', onUpgrade);

  /** A request carrying the connection's credential, for the same resolvers HTTP requests use. */
  const credentialRequest = (ctx: WsContext) => {
    const headers = new Headers();
    const authorization = ctx.connectionParams?.authorization;
    const { cookie, 'user-agent': userAgent } = ctx.extra.request.headers;
    // An explicit key wins over the browser's cookie.
    if (typeof authorization === 'string') headers.set('authorization', authorization);
    else if (cookie) headers.set('cookie', cookie);
    if (userAgent) headers.set('user-agent', userAgent);
    return new Request(new URL('/graphql', runtime.env.publicUrl), { headers });
  };

  const endConnection = (ctx: WsContext) => {
    const state = ctx.extra;
    if (state.ending) return;
    state.ending = true;
    closeWhenIdle(ctx);
    setTimeout(() => close(state.socket), CLOSE_DEADLINE_MS).unref();
  };

  /** A result as it leaves: with the contract's codes (counted) and the operation's request id. */
  const answer = <R extends { errors?: readonly GraphQLError[] }>(result: R, requestId: string): R => {
    const formatted = withoutHttpStatus(formatResult(result));
    runtime.metrics.countErrors(formatted.errors);
    return withRequestId(formatted, requestId);
  };

  const closeWhenIdle = (ctx: WsContext, completing?: string) => {
    const running = Object.keys(ctx.subscriptions).filter((id) => id !== completing);
    // A turn later, so that the last `complete` message goes out before the close frame.
    if (running.length === 0) setTimeout(() => close(ctx.extra.socket));
  };

  const graphqlWs = useServer<Record<string, unknown> | undefined, ConnectionState>(
    {
      connectionInitWaitTimeout: WEBSOCKET_LIMITS.initWaitMs,
      execute: (args) => {
        const root = args.rootValue as ExecutionRoot;
        return inRequestScope(root.requestId, () => root.execute(args));
      },
      subscribe: (args) => {
        const root = args.rootValue as ExecutionRoot;
        return inRequestScope(root.requestId, async () => {
          const result = await root.subscribe(args);
          // graphql-ws pulls the events from the socket's context: each runs in the operation's.
          return isAsyncIterable(result) ? pulledHere(result) : result;
        });
      },
      // The handshake's log lines carry the upgrade request's id.
      onConnect: (ctx) =>
        inRequestScope(connectionIds.get(ctx.extra.request)!, async () => {
          const authorization = ctx.connectionParams?.authorization;
          if (authorization !== undefined && typeof authorization !== 'string') return false;
          let viewer: Viewer;
          try {
            viewer = await resolveViewer(credentialRequest(ctx));
          } catch (error) {
            if (!asServiceUnavailable(error)) throw error;
            // The credential cannot be checked during an outage: "try again later", not an internal error.
            ctx.extra.socket.close(TRY_AGAIN_LATER, 'SERVICE_UNAVAILABLE');
            return false;
          }
          // A key that was presented but does not work is refused, not downgraded to anonymous.
          if (authorization !== undefined && !viewer.apiKeyId) return false;
          const credential = credentialOf(viewer);
          ctx.extra.viewer = viewer;
          if (credential) ctx.extra.untrack = runtime.live.track(credential, () => endConnection(ctx));
          return true;
        }),
      onSubscribe: async (ctx, _id, payload) => {
        // Each operation is a request of its own: its log lines and errors carry its id.
        const requestId = newRequestId();
        const prepared = await inRequestScope(requestId, async () => {
          if (ctx.extra.ending) return [unauthenticated()];
          if (Object.keys(ctx.subscriptions).length > WEBSOCKET_LIMITS.operationsPerConnection) {
            return [
              new GraphQLError(
                `At most ${WEBSOCKET_LIMITS.operationsPerConnection} operations run at once on one connection.`,
                { extensions: { code: 'BAD_USER_INPUT' } },
              ),
            ];
          }
          const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
            request: credentialRequest(ctx),
            req: ctx.extra.request,
            params: payload,
          });
          let contextValue: RequestContext;
          try {
            contextValue = (await contextFactory()) as unknown as RequestContext;
          } catch (error) {
            const unavailable = asServiceUnavailable(error);
            if (unavailable) return [unavailable];
            throw error;
          }
          const opened = ctx.extra.viewer && credentialOf(ctx.extra.viewer);
          if (opened && credentialOf(contextValue.viewer)?.id !== opened.id) {
            // The credential ended since the handshake; its end event may still be on its way.
            endConnection(ctx);
            return [unauthenticated()];
          }
          let document: ReturnType<typeof parse>;
          let errors: readonly GraphQLError[];
          try {
            document = parse(payload.query);
            errors = validate(schema, document);
          } catch (error) {
            // The limits throw from parsing (tokens) and validation (depth, aliases, directives, cost):
            // they refuse this operation, as over HTTP, and the connection stays.
            if (!(error instanceof GraphQLError)) throw error;
            return [error];
          }
          if (errors.length > 0) return errors;
          return {
            schema,
            document,
            operationName: payload.operationName,
            variableValues: payload.variables,
            contextValue,
            rootValue: { execute, subscribe, requestId } satisfies ExecutionRoot,
          };
        });
        return Array.isArray(prepared) ? answer({ errors: prepared }, requestId).errors : prepared;
      },
      // Counted in portico_subscriptions_open until the stream ends or the socket closes.
      onOperation: (_ctx, _id, _payload, _args, result) =>
        isAsyncIterable(result) ? runtime.metrics.countOpen(result, 'websocket') : undefined,
      onNext: (_ctx, _id, _payload, args, result) =>
        answer(
          result as { errors?: readonly GraphQLError[] },
          (args.rootValue as ExecutionRoot).requestId,
        ) as never,
      onComplete(ctx, id) {
        if (ctx.extra.ending) closeWhenIdle(ctx, id);
      },
      onClose(ctx) {
        ctx.extra.untrack?.();
      },
    },
    wss,
  );

  return {
    /** Closes every WebSocket connection (1001, going away) and stops accepting new ones. */
    async close() {
      server.off('upgrade', onUpgrade);
      await graphqlWs.dispose();
    },
    get connections() {
      return wss.clients.size;
    },
  };
}

/** Yoga's enveloped execute and subscribe, and the operation's request id, carried to graphql-ws in the root value. */
interface ExecutionRoot {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
  requestId: string;
}

const unauthenticated = () =>
  new GraphQLError('The credential of this connection has ended.', {
    extensions: { code: 'UNAUTHENTICATED' },
  });

const close = (socket: WebSocket) => {
  if (socket.readyState === socket.OPEN)
    socket.close(CloseCode.Forbidden, 'Forbidden: the credential has ended');
};

function refuse(socket: Duplex, status: number, reason: string, requestId: string) {
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n${REQUEST_ID_HEADER}: ${requestId}\r\n\r\n`,
  );
}

/**
 * Yoga's `extensions.http` gives an HTTP answer its status (400, 503) and is stripped from HTTP
 * bodies; a WebSocket message has no status, so there it would only leak Yoga's internals.
 */
function withoutHttpStatus<R extends { errors?: readonly GraphQLError[] }>(result: R): R {
  if (!result.errors?.some((error) => error.extensions?.http !== undefined)) return result;
  return {
    ...result,
    errors: result.errors.map((error) => {
      if (error.extensions?.http === undefined) return error;
      const { http: _status, ...extensions } = error.extensions;
      return remadeError(error, { extensions });
    }),
  };
}
