import type { Plugin } from 'graphql-yoga';
import type { RequestContext } from '../context.ts';
import {
  asServiceUnavailable,
  isUnstorableText,
  PorticoError,
  RETRY_AFTER_SECONDS,
  unstorableText,
} from '../errors.ts';
import type { Logger } from '../logger.ts';
import { type Route, Router } from '../routes.ts';
import type { NodeServerContext } from '../server-context.ts';
import { currentRequestId } from '../telemetry/request-scope.ts';

export interface RoutesOptions {
  /** The plain HTTP routes, mounted beside /graphql. */
  routes: readonly Route[];
  /** The request's context, which the handler gets. */
  contextOf(request: Request, serverContext: NodeServerContext | undefined): Promise<RequestContext>;
  /** Where a handler's unexpected failure is logged. */
  log: Logger;
}

/**
 * Serves the routes: a path that a route has under other methods answers 405; a handler's error
 * answers as the contract says (`routeError`). The headers the handler set on `context.response`
 * are added by useResponseCookies, as for GraphQL requests.
 */
export function useRoutes({ routes, contextOf, log }: RoutesOptions): Plugin {
  const router = new Router(routes);
  return {
    async onRequest({ request, url, endResponse, serverContext }) {
      const match = router.match(request.method, url.pathname);
      if (match === null) return;
      if (match === 'methodNotAllowed') {
        endResponse(
          Response.json({ error: 'method not allowed', requestId: currentRequestId() }, { status: 405 }),
        );
        return;
      }
      try {
        const context = await contextOf(request, serverContext as NodeServerContext | undefined);
        endResponse(await match.route.handler(request, context, match.params));
      } catch (error) {
        endResponse(routeError(error, log));
      }
    },
  };
}

/** An outage: 503 with Retry-After; a refusal: 404 or 400 with its code; anything else: 500, logged. */
function routeError(error: unknown, log: Logger): Response {
  const unavailable = asServiceUnavailable(error);
  if (unavailable) {
    return Response.json(
      { error: unavailable.message, code: unavailable.code, requestId: currentRequestId() },
      { status: 503, headers: { 'retry-after': String(RETRY_AFTER_SECONDS) } },
    );
  }
  const refusal = isUnstorableText(error) ? unstorableText() : error;
  if (refusal instanceof PorticoError) {
    return Response.json(
      { error: refusal.message, code: refusal.code, requestId: currentRequestId() },
      { status: refusal.code === 'NOT_FOUND' ? 404 : 400 },
    );
  }
  log.error({ err: error }, 'route failed');
  return Response.json({ error: 'Internal server error', requestId: currentRequestId() }, { status: 500 });
}
