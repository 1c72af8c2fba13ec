import { isAbsolute, relative, resolve } from 'node:path';
import { type DatabaseTarget, type Environment, parseDatabaseUrl, StartupError } from '../config.ts';
import { closeDatabase, type Database, type Databases, openStoreDatabase, problemOf } from '../db.ts';
import { isDatabaseUnavailable, PorticoError, serviceUnavailable } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub.ts';
import type { GatewayMetrics } from '../telemetry/metrics.ts';
import type { StoreAbout, StoreBackend } from './backend.ts';
import { openRemoteStore } from './remote/index.ts';
import { describeRemoteUrl, isRemoteStoreUrl, parseRemoteStoreUrl } from './remote/protocol.ts';
import { createSqlStore } from './sql/index.ts';
import type { OpenedStore } from './switch.ts';

/** How often a store that did not answer at start is tried again. */
const STORE_RETRY_MS = 5000;

/** DATABASE_URL's store, and how it comes to serve (see `serve`). */
export interface InitialStore extends OpenedStore {
  /**
   * Runs `prepare` (the modules' `prepareStore`) on the store before it serves: now when it
   * answers, else in the background once it does. Throws (the start fails) when the store answers
   * but cannot serve this gateway: a remote store that declares the collections differently, or
   * no key for it.
   */
  serve(prepare: (store: StoreBackend) => Promise<void>): Promise<void>;
}

/** How a gateway gets the key for a remote store (HTTP.md, Store backends). */
export const remoteKeyOptions = (env: Pick<Environment, 'remoteApiKey' | 'remoteAuthUrl'>) => ({
  apiKey: env.remoteApiKey,
  authUrl: env.remoteAuthUrl,
  interactive: process.stdin.isTTY === true && process.stderr.isTTY === true,
});

/**
 * The key sources for a store an admin switches to: as at start (the contract's order), but no
 * device flow, which no one may be at the terminal to answer while the mutation waits. The key
 * goes to whichever data server an admin names, over https or loopback only.
 */
const switchKeyOptions = (env: Pick<Environment, 'remoteApiKey' | 'remoteAuthUrl'>) => ({
  ...remoteKeyOptions(env),
  interactive: false,
  deviceFlowAtStart: false,
});

/**
 * The store DATABASE_URL names: the SQL backend on the store database `openDatabases` opened, or a
 * remote Portico. A store that does not answer at start answers SERVICE_UNAVAILABLE until it does.
 */
export function openInitialStore(
  env: Pick<Environment, 'databaseUrl' | 'remoteApiKey' | 'remoteAuthUrl'>,
  db: Databases,
  pubsub: PubSub,
  log: Logger,
  gateway: () => Promise<string>,
  metrics?: Pick<GatewayMetrics, 'remoteStoreCalls'>,
): InitialStore {
  if (!isRemoteStoreUrl(env.databaseUrl)) {
    const backend = openStore(db, pubsub, log, env.databaseUrl);
    // The databases close it.
    return {
      backend,
      close: async () => {},
      serve: (prepare) => serveStore(db, backend, pubsub, log, prepare),
    };
  }
  const remote = openRemoteStore({
    url: env.databaseUrl,
    source: 'environment',
    key: remoteKeyOptions(env),
    log,
    gateway,
    serving: false,
    metrics,
  });
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  const attempt = async (prepare: (store: StoreBackend) => Promise<void>) => {
    try {
      return await remote.backend.serve(prepare);
    } catch (error) {
      if (error instanceof PorticoError) throw new StartupError(error.message, { cause: error });
      throw error;
    }
  };
  return {
    backend: remote.backend,
    close: async () => {
      closed = true;
      clearTimeout(retry);
      await remote.close();
    },
    async serve(prepare) {
      if (await attempt(prepare)) return;
      log.warn(
        `the store at ${remote.backend.about.url} does not answer: starting without it; store operations answer SERVICE_UNAVAILABLE until it answers`,
      );
      const again = () => {
        retry = setTimeout(() => {
          attempt(prepare).then(
            (served) => {
              if (served) log.info('the remote store answers: store operations are served');
              else if (!closed) again();
            },
            (error: unknown) => {
              log.error({ err: error }, 'the remote store cannot serve this gateway');
              if (!closed) again();
            },
          );
        }, STORE_RETRY_MS).unref();
      };
      again();
    },
  };
}

/**
 * The business store named by DATABASE_URL: the SQL backend on the store database that
 * `openDatabases` opened (the system database itself when both URLs are equal). A store that did
 * not answer at start answers SERVICE_UNAVAILABLE until `serveStore` has brought it up.
 */
export const openStore = (db: Databases, pubsub: PubSub, log: Logger, databaseUrl: string): StoreBackend =>
  createSqlStore({
    database: () => {
      if (!db.store) throw new Error('DATABASE_URL names no SQL store');
      return db.store;
    },
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
  {
    pubsub,
    log,
    env,
    gateway,
    metrics,
  }: {
    pubsub: PubSub;
    log: Logger;
    env: Pick<Environment, 'dataDir' | 'databaseUrl' | 'remoteApiKey' | 'remoteAuthUrl'>;
    gateway: () => Promise<string>;
    /** Where the store's statements, or its calls to a data server, are timed. */
    metrics?: Pick<GatewayMetrics, 'statementDuration' | 'remoteStoreCalls'>;
  },
): Promise<OpenedStore> {
  const checked = checkedStoreUrl(url, env.dataDir);
  if (isRemoteStoreUrl(checked)) {
    return openRemoteStore({
      url: checked,
      source,
      key: switchKeyOptions(env),
      log,
      gateway,
      serving: true,
      metrics,
    });
  }
  let database: Database;
  try {
    database = await openStoreDatabase(checked, log, metrics);
  } catch (error) {
    const cause = error instanceof Error ? (error.cause ?? error) : error;
    const message = error instanceof Error ? error.message : String(error);
    throw isDatabaseUnavailable(cause)
      ? serviceUnavailable(message)
      : new PorticoError('BAD_USER_INPUT', message, { field: 'url' });
  }
  return {
    backend: createSqlStore({
      database: () => database,
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
  if (isRemoteStoreUrl(url.trim())) {
    try {
      parseRemoteStoreUrl(url.trim());
    } catch (error) {
      throw refuse(`${(error as Error).message}.`);
    }
    return url.trim();
  }
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
  if (isRemoteStoreUrl(databaseUrl)) {
    return { kind: 'remote', url: describeRemoteUrl(parseRemoteStoreUrl(databaseUrl)) };
  }
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
const serveStore = (
  db: Databases,
  store: StoreBackend,
  pubsub: PubSub,
  log: Logger,
  prepare: (store: StoreBackend) => Promise<void>,
) =>
  db.serveStore((database) =>
    prepare(
      createSqlStore({ database: () => database, pubsub, log, about: store.about, problem: store.problem }),
    ),
  );
