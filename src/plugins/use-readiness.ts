import { type Plugin, useReadinessCheck } from 'graphql-yoga';
import type { DatabasesHealth } from '../health.ts';

export interface ReadinessOptions {
  /** Whether the system database and the store answer now (`databasesHealth`). */
  health: () => Promise<DatabasesHealth>;
  /** Where readiness is asked. Default: `/ready`. */
  endpoint?: string;
}

/**
 * Readiness (docs/http.md): 200 `{ status: 'ready', databases }` when both databases answer, else
 * 503 `{ status: 'unavailable', databases }`, which says which one is down. Yoga's readiness
 * check serves it.
 */
export function useReadiness({ health, endpoint = '/ready' }: ReadinessOptions): Plugin {
  const readiness = useReadinessCheck({
    endpoint,
    async check({ fetchAPI }) {
      const { system, store } = await health();
      const up = { system: system.problem === null, store: store.problem === null };
      const ready = up.system && up.store;
      return fetchAPI.Response.json(
        { status: ready ? 'ready' : 'unavailable', databases: up },
        { status: ready ? 200 : 503 },
      );
    },
  });
  return {
    // Yoga's check answers every path that ends in the endpoint (`/anything/ready`): only the endpoint is readiness.
    onRequest(payload) {
      if (payload.url.pathname === endpoint) return readiness.onRequest?.(payload);
    },
  };
}
