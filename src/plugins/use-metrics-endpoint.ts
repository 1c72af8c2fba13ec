import type { Plugin } from 'graphql-yoga';
import { collectDefaultMetrics, type Registry } from 'prom-client';
import { sameDigest, sha256 } from '../secrets.ts';

export interface MetricsEndpointOptions {
  /** The gateway's registry (`runtime.metrics.registry`). */
  registry: Registry;
  /** `PORTICO_METRICS_TOKEN`: the bearer token a scraper sends. */
  token: string;
  /**
   * The text to answer, when it is not the registry's own: every worker's counters summed, under
   * `portico start --workers` (`WorkerMetrics.gather`). A rejection answers 503.
   */
  gather?: () => Promise<string>;
}

const ENDPOINT = '/metrics';

/**
 * `GET /metrics` (HTTP.md): the registry in Prometheus' text format, with Node's process metrics
 * (CPU, memory, event loop lag, garbage collection), for `Authorization: Bearer <token>` only;
 * anything else is 403. The gateway adds it only when a token is set: otherwise the path is 404.
 */
export function useMetricsEndpoint({
  registry,
  token,
  gather = () => registry.metrics(),
}: MetricsEndpointOptions): Plugin {
  collectDefaultMetrics({ register: registry });
  // Digests of equal length, compared in constant time: the comparison says nothing of the token's length or prefix.
  const expected = sha256(token);
  const authorized = (request: Request) => {
    const presented = /^Bearer (\S+)$/i.exec(request.headers.get('authorization') ?? '')?.[1];
    return presented !== undefined && sameDigest(sha256(presented), expected);
  };
  return {
    async onRequest({ request, url, endResponse }) {
      if (url.pathname !== ENDPOINT) return;
      if (request.method !== 'GET') {
        endResponse(
          Response.json({ error: 'method not allowed' }, { status: 405, headers: { allow: 'GET' } }),
        );
        return;
      }
      if (!authorized(request)) {
        endResponse(
          Response.json(
            { error: 'GET /metrics needs the metrics token.', code: 'FORBIDDEN' },
            { status: 403 },
          ),
        );
        return;
      }
      let text: string;
      try {
        text = await gather();
      } catch (error) {
        endResponse(
          Response.json(
            {
              error: `The metrics could not be gathered: ${(error as Error).message}.`,
              code: 'SERVICE_UNAVAILABLE',
            },
            { status: 503, headers: { 'retry-after': '1' } },
          ),
        );
        return;
      }
      endResponse(
        new Response(text, {
          headers: { 'content-type': registry.contentType, 'cache-control': 'no-store' },
        }),
      );
    },
  };
}
