import { type Plugin, useReadinessCheck } from 'graphql-yoga';
import type { Databases } from '../db.ts';
import type { StoreBackend } from '../store/backend.ts';

export interface ReadinessOptions {
  /** The system database. */
  databases: Pick<Databases, 'systemProblem'>;
  /** The store, whichever backend holds it now. */
  store: Pick<StoreBackend, 'problem'>;
  /** Where readiness is asked. Default: `/ready`. */
  endpoint?: string;
}

/**
 * Readiness (docs/http.md): 200 `{ status: 'ready', databases }` when both databases answer, else
 * 503 `{ status: 'unavailable', databases }`, which says which one is down. Yoga's readiness
 * check serves it.
 */
export function useReadiness({ databases, store, endpoint = '/ready' }: ReadinessOptions): Plugin {
  const readiness = useReadinessCheck({
    endpoint,
    async check({ fetchAPI }) {
      const [systemProblem, storeProblem] = await Promise.all([databases.systemProblem(), store.problem()]);
      const up = { system: systemProblem === null, store: storeProblem === null };
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
