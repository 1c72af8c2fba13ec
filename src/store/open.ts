import { parseDatabaseUrl } from '../config.ts';
import type { Databases } from '../db.ts';
import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub.ts';
import type { StoreAbout, StoreBackend } from './backend.ts';
import { createSqlStore } from './sql/index.ts';

/**
 * The business store named by DATABASE_URL: the SQL backend on the store database that
 * `openDatabases` opened (the system database itself when both URLs are equal). A store that did
 * not answer at start answers SERVICE_UNAVAILABLE until `serveStore` has brought it up.
 */
export const openStore = (db: Databases, pubsub: PubSub, log: Logger, databaseUrl: string): StoreBackend =>
  createSqlStore({
    root: () => db.store.em,
    pubsub,
    log,
    about: { ...describeUrl(databaseUrl), source: 'environment', since: new Date() },
    problem: () => db.storeProblem(),
  });

/** The kind of a SQL store's URL, and the URL as admins may see it: without a password. */
export function describeUrl(databaseUrl: string): Pick<StoreAbout, 'kind' | 'url'> {
  const target = parseDatabaseUrl(databaseUrl);
  if (target.dialect === 'sqlite') return { kind: 'sqlite', url: `sqlite:${target.file}` };
  const url = new URL(target.url);
  url.password = '';
  url.searchParams.delete('password');
  return { kind: 'postgres', url: url.toString() };
}

/**
 * Runs `prepare` (the modules' `prepareStore`: index builds) on the store before it serves: now
 * when it answered at start, else once it answers. `prepare` gets a backend that reaches the
 * database before requests may.
 */
export const serveStore = (
  db: Databases,
  store: StoreBackend,
  pubsub: PubSub,
  log: Logger,
  prepare: (store: StoreBackend) => Promise<void>,
) =>
  db.serveStore((em) =>
    prepare(createSqlStore({ root: () => em, pubsub, log, about: store.about, problem: store.problem })),
  );
