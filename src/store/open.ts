import { isAbsolute, relative, resolve } from 'node:path';
import { type DatabaseTarget, parseDatabaseUrl } from '../config.ts';
import { closeDatabase, type Database, type Databases, openStoreDatabase, problemOf } from '../db.ts';
import { isDatabaseUnavailable, PorticoError, serviceUnavailable } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub.ts';
import type { StoreAbout, StoreBackend } from './backend.ts';
import { createSqlStore } from './sql/index.ts';
import type { OpenedStore } from './switch.ts';

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

/**
 * A backend an admin switches to: `url` checked (a SQLite file must lie in the data folder, since
 * an admin's URL must not reach files elsewhere), its database opened and its schema brought up to
 * date. Refuses with BAD_USER_INPUT (a URL it cannot use) or SERVICE_UNAVAILABLE (a database that
 * does not answer).
 */
export async function openStoreAt(
  url: string,
  source: StoreAbout['source'],
  { pubsub, log, dataDir }: { pubsub: PubSub; log: Logger; dataDir: string },
): Promise<OpenedStore> {
  const checked = checkedStoreUrl(url, dataDir);
  let database: Database;
  try {
    database = await openStoreDatabase(checked, log);
  } catch (error) {
    const cause = error instanceof Error ? (error.cause ?? error) : error;
    const message = error instanceof Error ? error.message : String(error);
    throw isDatabaseUnavailable(cause)
      ? serviceUnavailable(message)
      : new PorticoError('BAD_USER_INPUT', message, { field: 'url' });
  }
  return {
    backend: createSqlStore({
      root: () => database.em,
      pubsub,
      log,
      about: { ...describeUrl(checked), source, since: new Date() },
      problem: () => problemOf(database),
    }),
    close: () => closeDatabase(database),
  };
}

const MAX_URL_LENGTH = 2048;

function checkedStoreUrl(url: string, dataDir: string): string {
  const refuse = (message: string) => new PorticoError('BAD_USER_INPUT', message, { field: 'url' });
  if (url.length > MAX_URL_LENGTH) throw refuse(`A store URL has at most ${MAX_URL_LENGTH} characters.`);
  let target: DatabaseTarget;
  try {
    target = parseDatabaseUrl(url.trim());
  } catch (error) {
    throw refuse(`${(error as Error).message}.`);
  }
  if (target.dialect === 'postgresql') return target.url;
  const folder = resolve(dataDir);
  const file = resolve(folder, target.file);
  const inside = relative(folder, file);
  if (target.file === ':memory:' || !inside || inside.startsWith('..') || isAbsolute(inside)) {
    throw refuse(`A SQLite store must be a file in the data folder (${folder}).`);
  }
  return `sqlite:${file}`;
}

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
