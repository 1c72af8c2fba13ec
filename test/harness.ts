import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type BucketLocationConstraint, CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import pg from 'pg';
import { WebSocket } from 'ws';
import { CreateApiKeyDocument, RedeemTokenDocument, SignUpDocument } from '../client/index.ts';
import { builtinModules } from '../modules/index.ts';
import { createGateway, type Gateway } from '../src/gateway.ts';
import type { Clock, PorticoModule } from '../src/index.ts';
import { loadConfig } from '../src/load-config.ts';
import { createLogger } from '../src/logger.ts';
import { composeModules } from '../src/module.ts';
import { type S3Server, startS3Server } from './s3/server.ts';

export type Backend = 'sqlite' | 'postgres';

/**
 * Where a gateway's store is: its own database, or a data server (another gateway, on SQLite or
 * PostgreSQL) reached over the store protocol, with the gateway's identity on its own SQLite file.
 */
export type StoreKind = Backend | 'remote-sqlite' | 'remote-postgres';

/** PostgreSQL for tests: `PORTICO_TEST_POSTGRES_URL` names a server (any database on it); CI must give one. */
const postgresUrl = process.env.PORTICO_TEST_POSTGRES_URL;
if (process.env.CI === 'true' && !postgresUrl) {
  throw new Error('CI runs the suite on PostgreSQL too: set PORTICO_TEST_POSTGRES_URL');
}

/**
 * Redis for tests: `PORTICO_TEST_REDIS_URL` names a server the tests share (they never pause it:
 * see `startPrivateRedis`); CI must give one.
 */
export const redisUrl = process.env.PORTICO_TEST_REDIS_URL;
if (process.env.CI === 'true' && !redisUrl) {
  throw new Error('CI runs the Redis pub/sub tests: set PORTICO_TEST_REDIS_URL');
}

/** The backends every end-to-end suite runs on. */
export const backends: Backend[] = postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];

/** The stores the collections, blobs and leases suites run on: each backend, and a data server on each. */
export const storeKinds: StoreKind[] = [
  ...backends,
  ...backends.map((backend) => `remote-${backend}` as const),
];

/**
 * Where a gateway's blob bytes live: its data folder, a bucket of a strict S3 server (test/s3), or
 * its store database.
 */
export type BlobStorageKind = 'file' | 's3' | 'database';

/** The credentials and bucket of the tests' S3 servers. */
export const TEST_S3 = {
  accessKeyId: 'PORTICOTESTKEY',
  secretAccessKey: 'portico-test-secret-0123456789',
  region: 'eu-test-1',
  bucket: 'portico-blobs',
  prefix: 'blobs',
};

/** A client of a test S3 server, as the gateway's driver talks to it. */
export const s3Client = (server: S3Server) =>
  new S3Client({
    endpoint: server.endpoint,
    region: TEST_S3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: TEST_S3.accessKeyId, secretAccessKey: TEST_S3.secretAccessKey },
  });

/** A strict S3 server with the tests' bucket, and the environment that points a gateway at it. */
export async function startTestBucket(): Promise<{ s3: S3Server; env: Record<string, string> }> {
  const s3 = await startS3Server(TEST_S3);
  const client = s3Client(s3);
  await client.send(
    new CreateBucketCommand({
      Bucket: TEST_S3.bucket,
      CreateBucketConfiguration: { LocationConstraint: TEST_S3.region as BucketLocationConstraint },
    }),
  );
  client.destroy();
  const url = new URL(`s3://${TEST_S3.bucket}/${TEST_S3.prefix}`);
  url.searchParams.set('endpoint', s3.endpoint);
  url.searchParams.set('region', TEST_S3.region);
  url.searchParams.set('forcePathStyle', 'true');
  return {
    s3,
    env: {
      BLOB_STORAGE_URL: url.toString(),
      AWS_ACCESS_KEY_ID: TEST_S3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: TEST_S3.secretAccessKey,
    },
  };
}

export const TEST_SECRET = 'test-secret-that-is-long-enough-0123456789';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh, empty database: a SQLite file in `dir`, or a new PostgreSQL database dropped afterwards. */
export async function createTestDatabase(
  backend: Backend,
  dir: string,
  name = 'portico',
): Promise<TestDatabase> {
  if (backend === 'sqlite') return { url: `sqlite:${join(dir, `${name}.sqlite`)}`, drop: async () => {} };
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  const database = `portico_test_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await admin.query(`create database ${database}`);
  await admin.end();
  const url = new URL(postgresUrl!);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query(`drop database if exists ${database} with (force)`);
      await client.end();
    },
  };
}

/** Runs statements on the PostgreSQL server as its administrator (in its own `postgres` database). */
export async function asServerAdmin(...statements: string[]) {
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  try {
    for (const statement of statements) await admin.query(statement);
  } finally {
    await admin.end();
  }
}

/** `POST /blobs` of raw bytes with the client's cookie and the CSRF header; the response as it is. */
export const postBlob = (client: TestClient, bytes: Uint8Array<ArrayBuffer>) =>
  client.request('/blobs', {
    method: 'POST',
    headers: { 'x-portico-csrf': '1', 'content-type': 'application/octet-stream' },
    body: bytes,
  });

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface StartOptions {
  /** A store kind `remote-…` starts a data server with the same configuration first (`dataServer`). */
  backend?: StoreKind;
  /**
   * `s3`: the blob bytes go to a bucket of a strict S3 server started for this gateway (`s3`);
   * `database`: to its store database (BLOB_STORAGE_URL=database).
   */
  blobStorage?: BlobStorageKind;
  /** The configuration file's plain keys (written as portico.config.json). */
  config?: Record<string, unknown>;
  /** A configuration file written as is (e.g. a portico.config.ts with modules in code). */
  configFile?: { name: string; content: string };
  env?: Record<string, string>;
  /** Database URLs to reuse (a restart); otherwise fresh ones are made. */
  databaseUrl?: string;
  dataDir?: string;
  modules?: PorticoModule[];
  /** Listen on 127.0.0.1 (default); false serves through `gateway.fetch` only. */
  listen?: boolean;
  /** The port to listen on (default: any free one). */
  port?: number;
  /** A clock the test moves (session timeouts). */
  clock?: Clock;
}

export interface TestGateway {
  gateway: Gateway;
  /** The gateway serving this one's store, for a `remote-…` store kind. */
  dataServer?: TestGateway;
  /** The S3 server holding the blob bytes, for `blobStorage: 's3'`. */
  s3?: S3Server;
  url: string;
  dataDir: string;
  databaseUrl: string;
  logs: LogLine[];
  /** The last bootstrap link printed to the log. */
  bootstrapToken(): string;
  client(): TestClient;
  /** Stops the gateway; the database stays (for restarts) until `drop`. */
  stop(): Promise<void>;
  /** Stops the gateway and removes its database and data folder. */
  close(): Promise<void>;
}

/** Starts a real gateway on loopback, in production mode unless `env.NODE_ENV` says otherwise. */
export async function startGateway(options: StartOptions = {}): Promise<TestGateway> {
  if (options.blobStorage === 's3') return withTestBucket(options);
  const kind = options.backend ?? 'sqlite';
  if (kind === 'remote-sqlite' || kind === 'remote-postgres') return startEdge(options, kind);
  const backend = kind;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'portico-test-')));
  const database = options.databaseUrl
    ? { url: options.databaseUrl, drop: async () => {} }
    : await createTestDatabase(backend, dataDir);
  if (options.config) await writeFile(join(dataDir, 'portico.config.json'), JSON.stringify(options.config));
  if (options.configFile) await writeFile(join(dataDir, options.configFile.name), options.configFile.content);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const loaded = await loadConfig({
    cwd: dataDir,
    builtinModules: [...builtinModules, ...(options.modules ?? [])],
    env: {
      NODE_ENV: 'production',
      PORTICO_SECRET: TEST_SECRET,
      PORTICO_DATA_DIR: dataDir,
      DATABASE_URL: database.url,
      PORTICO_PUBLIC_URL: 'http://portico.test',
      ...(options.blobStorage === 'database' ? { BLOB_STORAGE_URL: 'database' } : {}),
      ...options.env,
    },
  });
  const config = { ...loaded, modules: composeModules(loaded.modules) };
  const gateway = await createGateway(config, {
    log: createLogger({ mode: 'production', level: 'info', destination: sink }),
    clock: options.clock,
  });
  const url =
    options.listen === false ? 'http://portico.test' : await gateway.listen(options.port ?? 0, '127.0.0.1');
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await gateway.close(1000);
  };
  const fetcher: typeof fetch =
    options.listen === false ? (input, init) => gateway.fetch(new Request(input, init)) : fetch;
  return {
    gateway,
    url,
    dataDir,
    databaseUrl: database.url,
    logs,
    bootstrapToken() {
      const line = logs.findLast((entry) => entry.bootstrap === true);
      const token = line?.msg.match(/token=([\w-]+)/)?.[1];
      if (!token) throw new Error('No bootstrap link in the log');
      return token;
    },
    client: () => new TestClient(url, fetcher),
    stop,
    async close() {
      await stop();
      await database.drop();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; [key: string]: unknown }; path?: string[] }[];
  headers: Headers;
}

/** What a test sends: a typed document of client/operations, or a query text of its own. */
export type Operation = string | TypedDocumentNode<unknown, never>;

const printed = new WeakMap<TypedDocumentNode<unknown, never>, string>();

/** The text of an operation, a document printed once. */
export function queryText(operation: Operation): string {
  if (typeof operation === 'string') return operation;
  let text = printed.get(operation);
  if (text === undefined) {
    text = print(operation);
    printed.set(operation, text);
  }
  return text;
}

/** A client with a cookie jar, like one browser. */
export class TestClient {
  readonly cookies = new Map<string, string>();
  readonly url: string;
  readonly #fetcher: typeof fetch;
  constructor(url: string, fetcher: typeof fetch = fetch) {
    this.url = url;
    this.#fetcher = fetcher;
  }

  get cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0 && !headers.has('cookie')) headers.set('cookie', this.cookieHeader);
    const response = await this.#fetcher(new URL(path, this.url), { ...init, headers });
    for (const header of response.headers.getSetCookie()) {
      const [pair = ''] = header.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index);
      const value = pair.slice(index + 1);
      if (/max-age=0/i.test(header) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  /**
   * Posts one operation: a typed document of client/operations (its variables and result typed),
   * or a query text of the test's own (one probing the server with what no client sends).
   */
  async gql<R, V>(
    document: TypedDocumentNode<R, V>,
    variables?: V,
    headers?: Record<string, string>,
  ): Promise<GraphQLResponse<R>>;
  async gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<GraphQLResponse<T>>;
  async gql(
    document: Operation,
    variables?: unknown,
    headers: Record<string, string> = {},
  ): Promise<GraphQLResponse<unknown>> {
    const query = queryText(document);
    const response = await this.request('/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json',
        ...headers,
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as Omit<GraphQLResponse<unknown>, 'status' | 'headers'>;
    return { ...body, status: response.status, headers: response.headers };
  }
}

export const ADMIN = {
  email: 'admin@example.com',
  password: 'correct horse battery staple',
  name: 'Ada Admin',
};

/** Redeems the bootstrap link with a client; returns it signed in as the first admin. */
export async function bootstrapAdmin(portico: TestGateway, profile = ADMIN): Promise<TestClient> {
  const admin = portico.client();
  const result = await admin.gql(RedeemTokenDocument, { token: portico.bootstrapToken(), profile });
  if (result.errors) {
    const logged = portico.logs.filter((line) => line.level >= 50);
    throw new Error(`bootstrap failed: ${JSON.stringify(result.errors)} ${JSON.stringify(logged)}`);
  }
  return admin;
}

/** A new client signed up (signup must be open) and so signed in as `email`. */
export async function signUpClient(
  portico: TestGateway,
  email: string,
  password: string,
): Promise<TestClient> {
  const client = portico.client();
  const result = await client.gql(SignUpDocument, { input: { email, password } });
  if (result.errors) throw new Error(`signUp failed: ${JSON.stringify(result.errors)}`);
  return client;
}

/**
 * A gateway listening on a port chosen first, so that its public URL is its real address (the
 * links it hands out, device verification and invites, then work from here), with the first
 * admin bootstrapped: `admin` is signed in as ADMIN.
 */
export async function startGatewayWithAdmin(
  options: Omit<StartOptions, 'port'> = {},
): Promise<{ portico: TestGateway; admin: TestClient }> {
  const port = await freePort();
  const portico = await startGateway({
    ...options,
    port,
    env: { PORTICO_PUBLIC_URL: `http://127.0.0.1:${port}`, ...options.env },
  });
  return { portico, admin: await bootstrapAdmin(portico) };
}

/** The contract's code of the first error, for terse assertions. */
export const codeOf = (result: Pick<GraphQLResponse<unknown>, 'errors'>) =>
  result.errors?.[0]?.extensions?.code;

/** A clock that stands still until the test moves it. */
export class ManualClock implements Clock {
  #now = Date.now();
  now() {
    return this.#now;
  }
  advance(ms: number) {
    this.#now += ms;
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/**
 * Opens a GraphQL-over-SSE subscription (distinct connections mode) and collects its
 * events: until the server completes the stream, or until `until` `next` events arrived.
 */
export async function subscribeOverSse(
  client: TestClient,
  operation: Operation,
  variables: Record<string, unknown> = {},
  { until }: { until?: number } = {},
) {
  const controller = new AbortController();
  const response = await client.request('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query: queryText(operation), variables }),
    signal: controller.signal,
  });
  const events: SseEvent[] = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(':')) continue;
          const data = /^data: (.*)$/m.exec(block)?.[1];
          events.push({
            event: /^event: (.*)$/m.exec(block)?.[1] ?? 'message',
            data: data ? JSON.parse(data) : null,
          });
          if (until !== undefined && events.filter((event) => event.event === 'next').length >= until) {
            controller.abort();
            return events;
          }
        }
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
    return events;
  })();
  return { response, events, done };
}

export interface StreamCredential {
  /** Sends this client's cookies (a browser's session). */
  client?: TestClient;
  /** Sends `Authorization: Bearer <key>` (SSE) or `connectionParams.authorization` (WebSocket). */
  apiKey?: string;
  /** The Origin header a browser would send. */
  origin?: string;
}

export interface WsConnection {
  client: WsClient;
  /** Every close of the socket, with its code. */
  closes: { code: number; reason: string }[];
  /** Resolves on the first close. */
  closed: Promise<{ code: number; reason: string }>;
}

/** A real graphql-ws client on the gateway's `/graphql` WebSocket; it never reconnects. */
export function connectWs(url: string, { client, apiKey, origin }: StreamCredential = {}): WsConnection {
  const headers: Record<string, string> = {};
  if (client && client.cookies.size > 0) headers.cookie = client.cookieHeader;
  if (origin) headers.origin = origin;
  class CredentialSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  }
  const closes: WsConnection['closes'] = [];
  let onClosed: (close: { code: number; reason: string }) => void = () => {};
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    onClosed = resolve;
  });
  const ws = createWsClient({
    url: `${url.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: CredentialSocket,
    retryAttempts: 0,
    // Kept open when idle, so that the server's close (and its code) is what ends it.
    lazy: false,
    // The close is reported through `closed`; the default would print it.
    onNonLazyError: () => {},
    connectionParams: apiKey ? { authorization: `Bearer ${apiKey}` } : undefined,
    on: {
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        closes.push({ code, reason });
        onClosed({ code, reason });
      },
    },
  });
  return { client: ws, closes, closed };
}

/** A real GraphQL-over-SSE client (distinct connections mode) with a cookie or an API key. */
export function connectSse(url: string, { client, apiKey, origin }: StreamCredential = {}): SseClient {
  return createSseClient({
    url: `${url}/graphql`,
    singleConnection: false,
    retryAttempts: 0,
    headers: () => {
      const headers: Record<string, string> = {};
      if (client && client.cookies.size > 0) headers.cookie = client.cookieHeader;
      if (apiKey) headers.authorization = `Bearer ${apiKey}`;
      if (origin) headers.origin = origin;
      return headers;
    },
  });
}

export interface Collected<T> {
  results: T[];
  /** Set when the stream failed rather than completed. */
  error?: unknown;
  /** True when the server completed the stream. */
  completed: boolean;
}

/**
 * Reads a subscription's results as they come: `results` fills live; `done` settles when the
 * stream completes or fails; `stop()` unsubscribes.
 */
export function collect<T>(iterator: AsyncIterableIterator<T>) {
  const collected: Collected<T> = { results: [], completed: false };
  const done = (async () => {
    try {
      for await (const result of iterator) collected.results.push(result);
      collected.completed = true;
    } catch (error) {
      collected.error = error;
    }
    return collected;
  })();
  return Object.assign(collected, { done, stop: () => void iterator.return?.() });
}

/** Polls until `check` holds; fails naming `what` after `timeoutMs`. */
export async function eventually(
  check: () => boolean,
  what = 'a condition',
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A Redis server of the test's own, on a free loopback port and keeping nothing on disk: one a
 * test may pause (SIGSTOP) without stalling the other test files that share the machine's Redis.
 */
export async function startPrivateRedis(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  // No stderr of ours: a server left running would hold the test runner's output open.
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const killOnExit = () => server.kill('SIGKILL');
  process.once('exit', killOnExit);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
    server.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.includes('Ready to accept connections')) resolve();
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: server.pid!,
    async stop() {
      process.off('exit', killOnExit);
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = once(server, 'exit');
      server.kill('SIGCONT');
      server.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A gateway whose store is a data server started first with the same configuration and modules
 * (`dataServer`), reached with an API key of its first admin that holds only `store:serve`.
 */
async function startEdge(
  options: StartOptions,
  kind: 'remote-sqlite' | 'remote-postgres',
): Promise<TestGateway> {
  const dataServer = await startGateway({
    ...options,
    backend: kind === 'remote-sqlite' ? 'sqlite' : 'postgres',
    dataDir: undefined,
    databaseUrl: undefined,
    env: { ...options.env, PORTICO_PUBLIC_URL: 'http://data.portico.test' },
    listen: true,
    port: undefined,
  });
  try {
    const key = await storeKey(dataServer);
    const edge = await startGateway({
      ...options,
      backend: 'sqlite',
      databaseUrl: options.databaseUrl ?? `portico+${dataServer.url}`,
      env: { PORTICO_REMOTE_API_KEY: key, ...options.env },
    });
    return {
      ...edge,
      dataServer,
      async stop() {
        await edge.stop();
        await dataServer.stop();
      },
      async close() {
        await edge.close();
        await dataServer.close();
      },
    };
  } catch (error) {
    await dataServer.close();
    throw error;
  }
}

/** An API key of the data server's first admin (bootstrapped here) with the scope `store:serve` only. */
export async function storeKey(dataServer: TestGateway): Promise<string> {
  const admin = await bootstrapAdmin(dataServer);
  const created = await admin.gql(CreateApiKeyDocument, { name: 'edge', scopes: ['store:serve'] });
  if (!created.data) throw new Error(`createApiKey failed: ${JSON.stringify(created.errors)}`);
  return created.data.createApiKey.secret;
}

/** A gateway whose blob bytes go to a bucket of a strict S3 server started for it (`s3`). */
async function withTestBucket(options: StartOptions): Promise<TestGateway> {
  const { s3, env } = await startTestBucket();
  try {
    const gateway = await startGateway({ ...options, blobStorage: 'file', env: { ...env, ...options.env } });
    return {
      ...gateway,
      s3,
      async close() {
        await gateway.close();
        await s3.close();
      },
    };
  } catch (error) {
    await s3.close();
    throw error;
  }
}
