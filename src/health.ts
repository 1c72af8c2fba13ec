import type { Databases } from './db.ts';
import type { StoreBackend } from './store/backend.ts';

/** One database as the gateway sees it now. */
export interface DatabaseHealth {
  backend: StoreBackend['about']['kind'];
  /** Why it does not answer a trivial query in time; null when it does. */
  problem: string | null;
}

/** Both databases, asked at once. */
export interface DatabasesHealth {
  system: DatabaseHealth;
  /** The store, whichever backend holds it now. */
  store: DatabaseHealth;
}

/**
 * Whether the system database and the store answer: what `GET /ready`, `portico_database_up` and
 * the console's overview report, from one probe of each.
 */
export async function databasesHealth(
  db: Pick<Databases, 'system' | 'systemProblem'>,
  store: Pick<StoreBackend, 'about' | 'problem'>,
): Promise<DatabasesHealth> {
  const [systemProblem, storeProblem] = await Promise.all([db.systemProblem(), store.problem()]);
  return {
    system: { backend: db.system.dialect === 'postgresql' ? 'postgres' : 'sqlite', problem: systemProblem },
    store: { backend: store.about.kind, problem: storeProblem },
  };
}
