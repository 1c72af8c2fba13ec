import { type ExecutionResult, getOperationAST } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { pathOf, type Route, routePatterns } from '../routes.ts';
import type { GatewayMetrics } from '../telemetry/metrics.ts';

/** The label of every path that is neither the kernel's nor a module route's (404s, probes). */
export const OTHER_ROUTE = 'other';

export interface HttpMetricsOptions {
  metrics: GatewayMetrics;
  /** The modules' routes, whose patterns (`/blobs/:id`) label their requests. */
  routes: readonly Route[];
}

/** When the request came in, on its server context: a WeakMap entry would cost more than the counting. */
const STARTED = Symbol('portico.metrics.started');
type Stamped = { [STARTED]?: number };

/**
 * Counts every HTTP response by method, route pattern and status, and times it to its response
 * headers. First of the plugins, so that it times the answers of those that end a request early
 * (routes, GraphiQL, readiness, /metrics); the few Yoga gives before any plugin (its /health check,
 * CORS preflights) are counted, not timed. WebSocket upgrades are not Yoga's: not counted.
 */
export function useHttpMetrics({ metrics, routes }: HttpMetricsOptions): Plugin {
  const patternOf = routePatterns(routes);
  return {
    onRequest({ serverContext }) {
      (serverContext as Stamped)[STARTED] = performance.now();
    },
    onResponse({ request, response, serverContext }) {
      const start = (serverContext as Stamped)[STARTED];
      metrics.httpRequest(
        request.method,
        patternOf(pathOf(request.url)) ?? OTHER_ROUTE,
        response.status,
        start === undefined ? undefined : secondsSince(start),
      );
    },
  };
}

/**
 * Counts every GraphQL operation (name, type, outcome, time to run: parse or validation when one
 * fails, otherwise execution), the errors of results as they leave (their contract codes), and
 * open SSE subscriptions; WebSocket results and subscriptions are counted in src/websocket.ts.
 * After useContractCodes, whose codes it counts.
 *
 * Not Yoga's Prometheus plugin: its operation counter and duration are observed where no result is
 * known (no outcome label), its error counter sees errors before masking (an outage is not yet
 * SERVICE_UNAVAILABLE) and none after the kernel's contract codes, its HTTP histogram covers only
 * GraphQL requests, and it times with `Date.now()` (whole milliseconds) and allocates label objects
 * on every request.
 */
export function useOperationMetrics({ metrics }: { metrics: GatewayMetrics }): Plugin {
  return {
    onParse({ context }) {
      const start = performance.now();
      return ({ result }) => {
        if (result instanceof Error)
          metrics.operation(nameSent(context), 'unknown', 'error', secondsSince(start));
      };
    },
    onValidate({ context, params }) {
      const start = performance.now();
      return ({ valid }) => {
        if (valid) return;
        const operation = getOperationAST(params.documentAST, nameSent(context));
        metrics.operation(
          operation?.name?.value,
          operation?.operation ?? 'unknown',
          'error',
          secondsSince(start),
        );
      };
    },
    onExecute({ args }) {
      const start = performance.now();
      return {
        onExecuteDone({ result }) {
          const operation = getOperationAST(args.document, args.operationName);
          const failed = !isAsyncIterable(result) && (result.errors?.length ?? 0) > 0;
          metrics.operation(
            operation?.name?.value,
            operation?.operation ?? 'unknown',
            failed ? 'error' : 'ok',
            secondsSince(start),
          );
        },
      };
    },
    onSubscribe({ args }) {
      const start = performance.now();
      return {
        onSubscribeResult({ result }) {
          const operation = getOperationAST(args.document, args.operationName);
          const failed = !isAsyncIterable(result) && (result.errors?.length ?? 0) > 0;
          metrics.operation(
            operation?.name?.value,
            'subscription',
            failed ? 'error' : 'ok',
            secondsSince(start),
          );
        },
      };
    },
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result)) {
        for (const each of result) metrics.countErrors(each.errors);
      } else if (isAsyncIterable(result)) {
        // Over HTTP, only subscriptions stream (no @defer or @stream), and Yoga sends them as SSE.
        setResult(
          metrics.countOpen(result as AsyncIterable<ExecutionResult>, 'sse', (event) =>
            metrics.countErrors(event.errors),
          ),
        );
      } else {
        metrics.countErrors(result.errors);
      }
    },
  };
}

const secondsSince = (start: number) => (performance.now() - start) / 1000;

/** The operation name the request sent, for a document that did not parse. */
const nameSent = (context: unknown) => {
  const name = (context as { params?: { operationName?: unknown } } | undefined)?.params?.operationName;
  return typeof name === 'string' ? name : null;
};
