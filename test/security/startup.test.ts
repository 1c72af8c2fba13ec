// A start-up that goes wrong says what is wrong, in one line, before it does anything else; and a
// store that does not answer at start does not keep identity down. Issue 12, item 10.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BlobsDocument,
  DocumentsDocument,
  LeaseDocument,
  LogInDocument,
  PutDocumentDocument,
  StoreBackendDocument,
} from '../../client/index.ts';
import {
  ADMIN,
  bootstrapAdmin,
  codeOf,
  createTestDatabase,
  freePort,
  type LogLine,
  startGateway,
  type TestClient,
} from '../harness.ts';
import { Outage } from '../outage.ts';
import { type Run, runPortico } from '../run-cli.ts';
import { errorLines, expectNoServerError, expectRefusal } from './answers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const postgresUrl = process.env.PORTICO_TEST_POSTGRES_URL;

/** One line on stderr, no stack, nothing listening: how a start that cannot happen must end. */
function expectOneLine(run: Run, ...mentions: (string | RegExp)[]) {
  expect(run.code, run.stderr).toBe(1);
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines, run.stderr).toHaveLength(1);
  for (const mention of mentions) expect(lines[0]).toMatch(mention);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout).not.toContain('listening');
}

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    return (await client.query('select 1 from pg_database where datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

async function dropDatabase(name: string) {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  await client.query(`drop database if exists ${name} with (force)`);
  await client.end();
}

/** A PostgreSQL URL on a loopback port where nothing listens. */
const unreachablePostgres = async () => `postgres://postgres@127.0.0.1:${await freePort()}/portico`;

describe('start-up that says what is wrong', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-startup-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const folder = () => mkdtemp(join(dir, 'run-'));

  it('refuses a database URL of an unknown scheme instead of making a SQLite file of it', async () => {
    for (const [variable, url] of [
      ['DATABASE_URL', 'http://db.example.com/portico'],
      ['DATABASE_URL', 'mysql://app@db.example.com/portico'],
      ['SYSTEM_DATABASE_URL', 'redis://127.0.0.1:6379'],
    ] as const) {
      const cwd = await folder();
      const run = await runPortico(['start'], cwd, {
        [variable]: url,
        PORTICO_DATA_DIR: join(cwd, 'data'),
        PORT: String(await freePort()),
      });
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toContain(`${variable}: unknown scheme "${url.split(':')[0]}:"`);
      expect(run.stdout).not.toContain('listening');
      // Nothing was created: no `http:` folder, no data folder, no database file.
      expect(await readdir(cwd)).toEqual([]);
    }
  });

  it('refuses plain http to a remote Portico store that is not on loopback, creating nothing', async () => {
    const cwd = await folder();
    const run = await runPortico(['start'], cwd, {
      DATABASE_URL: 'portico+http://data.example.com',
      PORTICO_DATA_DIR: join(cwd, 'data'),
      PORT: String(await freePort()),
    });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain(
      'DATABASE_URL: portico+http:// is for loopback addresses only; use portico+https://',
    );
    expect(await readdir(cwd)).toEqual([]);
  });

  it('says which key a remote Portico store needs when none is given and no one is at a terminal', async () => {
    const cwd = await folder();
    const run = await runPortico(['start'], cwd, {
      DATABASE_URL: 'portico+https://data.example.com',
      PORTICO_DATA_DIR: join(cwd, 'data'),
      PORT: String(await freePort()),
      XDG_CONFIG_HOME: join(cwd, 'config'),
    });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain('needs an API key with the scope store:serve');
    expect(run.stderr).toMatch(
      /PORTICO_REMOTE_API_KEY.*portico login https:\/\/data\.example\.com.*terminal/s,
    );
    expect(run.stderr).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it.runIf(postgresUrl)(
    'says that a PostgreSQL database does not exist and how to create it, creating nothing',
    async () => {
      const name = `portico_missing_${process.pid}_${Date.now().toString(36)}`;
      const missing = new URL(postgresUrl!);
      missing.pathname = `/${name}`;
      const cwd = await folder();
      try {
        for (const [args, env] of [
          [['start'], { DATABASE_URL: missing.toString() }],
          [['migrate'], { DATABASE_URL: missing.toString() }],
          // Also as the store beside a SQLite system database: a missing database is no outage to wait out.
          [
            ['start'],
            { DATABASE_URL: missing.toString(), SYSTEM_DATABASE_URL: `sqlite:${join(cwd, 'system.sqlite')}` },
          ],
        ] as const) {
          const run = await runPortico([...args], cwd, { ...env, PORT: String(await freePort()) });
          expectOneLine(
            run,
            `DATABASE_URL: the PostgreSQL database "${name}" does not exist`,
            `createdb -h ${missing.hostname} -p ${missing.port || 5432} -U postgres ${name}`,
          );
          expect(await databaseExists(name)).toBe(false);
        }
      } finally {
        // What a start that creates it silently would have left.
        await dropDatabase(name);
      }
    },
  );

  it('says that the system database cannot be reached, in one line', async () => {
    const cwd = await folder();
    const url = await unreachablePostgres();
    const port = new URL(url).port;
    expectOneLine(
      await runPortico(['start'], cwd, { DATABASE_URL: url, PORT: String(await freePort()) }),
      `DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:${port}`,
    );
    // `portico migrate` cannot do without the store: it says so too.
    expectOneLine(
      await runPortico(['migrate'], cwd, {
        DATABASE_URL: url,
        SYSTEM_DATABASE_URL: `sqlite:${join(cwd, 'system.sqlite')}`,
      }),
      `DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:${port}`,
    );
  });

  it('says that Redis cannot be reached, in one line', async () => {
    const cwd = await folder();
    const port = await freePort();
    expectOneLine(
      await runPortico(['start'], cwd, {
        REDIS_URL: `redis://127.0.0.1:${port}`,
        PORTICO_DATA_DIR: join(cwd, 'data'),
        PORT: String(await freePort()),
      }),
      /^Cannot connect to Redis \(REDIS_URL\) for the pub\/sub: .*ECONNREFUSED/,
    );
  });

  it('says that the port is taken, in one line, before any migration', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const cwd = await folder();
      const dataDir = join(cwd, 'data');
      const run = await runPortico(['start'], cwd, {
        PORT: String(port),
        HOST: '127.0.0.1',
        PORTICO_DATA_DIR: dataDir,
      });
      expectOneLine(run, `PORT: 127.0.0.1:${port} is already in use`);
      expect(existsSync(join(dataDir, 'portico.sqlite'))).toBe(false);
    } finally {
      taken.close();
    }
  });

  it('tells a Node older than `engines` which version it needs, in one line', async () => {
    const { engines } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    const required = Number(/\d+/.exec(engines.node)![0]);
    // README and engines agree.
    expect(await readFile(join(ROOT, 'README.md'), 'utf8')).toContain(`Node ${required} or newer`);
    const old = '/usr/bin/node';
    const version = existsSync(old) ? execFileSync(old, ['--version'], { encoding: 'utf8' }).trim() : '';
    if (!version || Number(/^v(\d+)/.exec(version)![1]) >= required) {
      // No older Node on this machine: nothing to run the shim with.
      return;
    }
    const cwd = await folder();
    const run = await runPortico(['start'], cwd, {}, { node: old });
    expectOneLine(run, `Portico needs Node ${engines.node}; this is Node ${version.slice(1)}.`);
    // What that Node says without the shim: the failure the line replaces.
    const bare = await runPortico(['start'], cwd, {}, { node: old, bin: join(ROOT, 'bin', 'portico.ts') });
    expect(bare.stderr).toContain('Unknown file extension ".ts"');
  });
});

/** The document `first` of notes, through the index bySlug. */
const FIRST = { collection: 'notes', index: 'bySlug', where: { eq: { slug: 'first' } } };
const PUT_FIRST = { collection: 'notes', id: 'first', data: { slug: 'first' } };
/** One read of each part of the store. */
const storeReads = (client: TestClient) => [
  () => client.gql(DocumentsDocument, FIRST),
  () => client.gql(BlobsDocument),
  () => client.gql(LeaseDocument, { key: 'job' }),
];

describe.runIf(postgresUrl)('a store on PostgreSQL that does not answer at start', () => {
  it('starts anyway: identity works, store operations answer SERVICE_UNAVAILABLE until it answers, then work without a restart', async () => {
    const database = await createTestDatabase('postgres', '');
    const outage = Outage.for(database.url);
    // The store's address refuses connections until the proxy comes up on it.
    outage.port = await freePort();
    const proxied = outage.urlOf(database.url);
    const dataDir = await mkdtemp(join(tmpdir(), 'portico-store-down-'));
    let portico: Awaited<ReturnType<typeof startGateway>> | undefined;
    try {
      portico = await startGateway({
        dataDir,
        databaseUrl: proxied,
        env: { SYSTEM_DATABASE_URL: `sqlite:${join(dataDir, 'system.sqlite')}` },
        config: { collections: { notes: { indexes: { bySlug: { fields: ['slug'], unique: true } } } } },
      });
      const logs: LogLine[] = portico.logs;
      expect(logs.some((line) => line.level === 40 && /DATABASE_URL: cannot connect/.test(line.msg))).toBe(
        true,
      );

      // Identity: the first admin, a login.
      const admin = await bootstrapAdmin(portico);
      const login = await portico
        .client()
        .gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
      expect(login.errors).toBeUndefined();

      // The store: unavailable, and /ready says which part is down.
      for (const read of storeReads(admin)) {
        const result = await read();
        expectRefusal(result, 'SERVICE_UNAVAILABLE');
        expect(result.status).toBe(503);
        expect(result.headers.get('retry-after')).toBeTruthy();
      }
      const put = await admin.gql(PutDocumentDocument, PUT_FIRST);
      expectRefusal(put, 'SERVICE_UNAVAILABLE');
      const ready = await fetch(new URL('/ready', portico.url));
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ databases: { system: true, store: false } });
      // Admins learn why from storeBackend, which answers while the store does not.
      const down = await admin.gql(StoreBackendDocument);
      expect(down.errors).toBeUndefined();
      expect(down.data?.storeBackend).toMatchObject({ kind: 'POSTGRES', status: 'UNAVAILABLE' });
      expect(down.data?.storeBackend.reason).toBeTruthy();

      // The database comes up: the same queries work, no restart.
      await outage.up();
      await expect
        .poll(async () => (await admin.gql(DocumentsDocument, FIRST)).status, {
          timeout: 20_000,
          interval: 250,
        })
        .toBe(200);
      expect((await fetch(new URL('/ready', portico.url))).status).toBe(200);
      expect((await admin.gql(StoreBackendDocument)).data?.storeBackend).toMatchObject({
        status: 'READY',
        reason: null,
      });
      for (const read of storeReads(admin)) expectNoServerError(await read());
      // Its schema was created and its indexes built then: a write is found through the index.
      expect((await admin.gql(PutDocumentDocument, PUT_FIRST)).errors).toBeUndefined();
      const found = await admin.gql(DocumentsDocument, FIRST);
      expect(found.data?.documents.edges).toHaveLength(1);
      expect(codeOf(await admin.gql(LeaseDocument, { key: 'job' }))).toBeUndefined();
      expect(logs.some((line) => /the store database answers/.test(line.msg))).toBe(true);
      // Bringing it up went without a hitch (each 503 above is logged by Yoga's masking: item 6's).
      expect(errorLines(logs).filter((line) => line.msg.includes('cannot be served'))).toEqual([]);
    } finally {
      await portico?.close();
      await outage.down();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
