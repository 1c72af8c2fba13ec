import type { Plugin } from 'graphql-yoga';
import { isForeignOrigin } from '../routes.ts';
import { currentRequestId } from '../telemetry/request-scope.ts';

export interface SseOriginOptions {
  /** The gateway's public URL: its origin is never foreign. */
  publicUrl: string;
  /** The GraphQL endpoint. Default: `/graphql`. */
  endpoint?: string;
}

/**
 * Refuses (403) a subscription over SSE that a browser opened from another site (docs/security.md: SSE
 * and WebSocket handshakes check Origin; `serveWebSocket` checks the upgrade).
 */
export function useSseOriginCheck({ publicUrl, endpoint = '/graphql' }: SseOriginOptions): Plugin {
  return {
    onRequest({ request, url, endResponse }) {
      if (url.pathname !== endpoint || !request.headers.get('accept')?.includes('text/event-stream')) return;
      if (isForeignOrigin(request.headers.get('origin'), request.headers.get('host'), publicUrl)) {
        endResponse(
          Response.json(
            { error: 'Cross-site subscriptions are refused.', requestId: currentRequestId() },
            { status: 403 },
          ),
        );
      }
    },
  };
}
