import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtinModules } from '../modules/index.ts';
import { ConfigError } from './config.ts';
import { loadConfig } from './load-config.ts';
import { composeModules, defineModule } from './module.ts';
import { parseBlobStorageUrl } from './store/blob-storage.ts';

const SECRET = 'x'.repeat(32);
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portico-config-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const load = (env: Record<string, string> = {}) =>
  loadConfig({ cwd: dir, builtinModules, env: { PORTICO_SECRET: SECRET, ...env } });

async function issuesOf(promise: Promise<unknown>): Promise<string[]> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).issues;
}

describe('configuration', () => {
  it('runs with no file at all, on the documented defaults', async () => {
    const { env, settings, source } = await load();
    expect(source).toBeUndefined();
    expect(env).toMatchObject({
      host: '127.0.0.1',
      port: 4000,
      publicUrl: 'http://localhost:4000',
      mode: 'development',
    });
    expect(env.databaseUrl).toBe(`sqlite:${join(dir, '.portico-data', 'portico.sqlite')}`);
    expect(env.systemDatabaseUrl).toBe(env.databaseUrl);
    expect(settings).toMatchObject({
      signup: 'invite',
      methods: ['password', 'magic-link'],
      roles: {},
      defaultRoles: [],
      session: { idleTimeoutMinutes: 1440, absoluteTimeoutHours: 720, cookieSecure: false },
    });
  });

  it('reads portico.config.json and reports every problem at once with its path', async () => {
    await writeFile(
      join(dir, 'portico.config.json'),
      JSON.stringify({
        signup: 'sometimes',
        session: { idleTimeoutMinutes: 0, colour: 'blue' },
        roles: { Editor: ['notes:read'] },
        defaultRoles: ['ghost'],
        methods: ['password', 'password'],
        surprise: true,
      }),
    );
    const issues = await issuesOf(load({ PORT: 'eighty' }));
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^signup: /),
        expect.stringMatching(/^session\.idleTimeoutMinutes: /),
        'session.colour: unknown key',
        expect.stringMatching(/^roles\.Editor: /),
        expect.stringMatching(/^methods: /),
        'surprise: unknown key',
      ]),
    );
    expect(issues.length).toBeGreaterThanOrEqual(7);
  });

  it('checks keys against each other once each parses', async () => {
    await writeFile(
      join(dir, 'portico.config.json'),
      JSON.stringify({
        roles: { member: [] },
        defaultRoles: ['member', 'ghost', 'admin'],
        methods: ['carrier-pigeon'],
      }),
    );
    const issues = await issuesOf(load());
    expect(issues).toEqual([
      'defaultRoles.1: unknown role "ghost" (declare it under "roles")',
      'defaultRoles.2: "admin" cannot be a default role',
      expect.stringMatching(/^methods\.0: unknown login method "carrier-pigeon"/),
    ]);
  });

  it('requires an endpoint when the remote method is enabled', async () => {
    await writeFile(join(dir, 'portico.config.json'), JSON.stringify({ methods: ['remote'] }));
    expect(await issuesOf(load())).toEqual(['remoteLogin.endpoint: required when methods include "remote"']);
  });

  it('reports a JSON syntax error with the file', async () => {
    await writeFile(join(dir, 'portico.config.json'), '{ "signup": ');
    const [issue] = await issuesOf(load());
    expect(issue).toContain('portico.config.json');
  });

  it('loads portico.config.ts with defineConfig, including modules written in code', async () => {
    const kernel = join(import.meta.dirname, 'index.ts');
    await writeFile(
      join(dir, 'portico.config.ts'),
      `import { defineConfig, defineModule } from ${JSON.stringify(kernel)};
const hello = defineModule({ name: 'hello', dependsOn: ['users'] });
export default defineConfig({ signup: 'open', modules: [hello] });\n`,
    );
    const { settings, modules, source } = await load();
    expect(source).toBe(join(dir, 'portico.config.ts'));
    expect(settings.signup).toBe('open');
    expect(modules.map((module) => module.name)).toEqual([
      'roles',
      'users',
      'rate-limits',
      'audit',
      'sessions',
      'api-keys',
      'invites',
      'remote-login',
      'mail',
      'magic-link',
      'device',
      'leases',
      'collections',
      'blobs',
      'store',
      'backups',
      'overview',
      'console',
      'hello',
    ]);
  });

  it('loads portico.config.mjs and honours PORTICO_CONFIG', async () => {
    await writeFile(join(dir, 'custom.mjs'), `export default { signup: 'closed' };\n`);
    const { settings } = await load({ PORTICO_CONFIG: 'custom.mjs' });
    expect(settings.signup).toBe('closed');
    expect(await issuesOf(load({ PORTICO_CONFIG: 'missing.json' }))).toEqual([
      `PORTICO_CONFIG: no file at ${join(dir, 'missing.json')}`,
    ]);
  });

  it('refuses modules in JSON and two configuration files at once', async () => {
    await writeFile(join(dir, 'portico.config.json'), JSON.stringify({ modules: [] }));
    expect(await issuesOf(load())).toContain(
      'modules: modules are code; declare them in portico.config.ts or .mjs',
    );
    await writeFile(join(dir, 'portico.config.mjs'), 'export default {};\n');
    expect((await issuesOf(load()))[0]).toMatch(/several configuration files/);
  });

  it('requires a 32+ character PORTICO_SECRET in production and accepts a rotation list', async () => {
    const missing = loadConfig({ cwd: dir, builtinModules, env: { NODE_ENV: 'production' } });
    expect(await issuesOf(missing)).toEqual(['PORTICO_SECRET: required in production (32+ characters)']);
    const short = loadConfig({
      cwd: dir,
      builtinModules,
      env: { NODE_ENV: 'production', PORTICO_SECRET: 'short' },
    });
    expect(await issuesOf(short)).toEqual(['PORTICO_SECRET: every secret must be at least 32 characters']);
    const rotated = await load({
      NODE_ENV: 'production',
      PORTICO_SECRET: `${'n'.repeat(32)}, ${'o'.repeat(40)}`,
    });
    expect(rotated.env.secrets).toEqual(['n'.repeat(32), 'o'.repeat(40)]);
  });

  it('generates a development secret once, private, into the data folder', async () => {
    const env = { PORTICO_DATA_DIR: join(dir, 'data') };
    const first = await loadConfig({ cwd: dir, builtinModules, env });
    const second = await loadConfig({ cwd: dir, builtinModules, env });
    expect(first.env.secrets[0]).toHaveLength(43);
    expect(second.env.secrets).toEqual(first.env.secrets);
    expect((await readFile(join(dir, 'data', 'secret'), 'utf8')).trim()).toBe(first.env.secrets[0]);
    expect((await stat(join(dir, 'data', 'secret'))).mode & 0o777).toBe(0o600);
  });

  it('takes the environment of docs/configuration.md', async () => {
    const { env } = await load({
      HOST: '0.0.0.0',
      PORT: '8080',
      PORTICO_PUBLIC_URL: 'https://portico.example.com/',
      DATABASE_URL: 'postgres://db/store',
      SYSTEM_DATABASE_URL: 'postgres://db/identity',
      REDIS_URL: 'redis://127.0.0.1:6379',
      NODE_ENV: 'production',
    });
    expect(env).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      publicUrl: 'https://portico.example.com',
      databaseUrl: 'postgres://db/store',
      systemDatabaseUrl: 'postgres://db/identity',
      redisUrl: 'redis://127.0.0.1:6379',
      mode: 'production',
    });
    expect(await issuesOf(load({ PORTICO_PUBLIC_URL: 'ftp://x' }))).toEqual([
      expect.stringMatching(/^PORTICO_PUBLIC_URL: /),
    ]);
  });

  it('turns GET /metrics on with a PORTICO_METRICS_TOKEN of 16 characters or more', async () => {
    expect((await load()).env.metricsToken).toBeUndefined();
    expect((await load({ PORTICO_METRICS_TOKEN: '  ' })).env.metricsToken).toBeUndefined();
    expect((await load({ PORTICO_METRICS_TOKEN: 'm'.repeat(16) })).env.metricsToken).toBe('m'.repeat(16));
    expect(await issuesOf(load({ PORTICO_METRICS_TOKEN: 'guessable' }))).toEqual([
      'PORTICO_METRICS_TOKEN: at least 16 characters',
    ]);
  });

  it('runs PORTICO_WORKERS processes: 1 by default, a number, or auto (one per core)', async () => {
    expect((await load()).env.workers).toBe(1);
    expect((await load({ PORTICO_WORKERS: '4' })).env.workers).toBe(4);
    expect((await load({ PORTICO_WORKERS: 'auto' })).env.workers).toBe(availableParallelism());
    for (const wrong of ['0', '1025', 'two', '2.5'])
      expect(await issuesOf(load({ PORTICO_WORKERS: wrong }))).toEqual([
        'PORTICO_WORKERS: expected an integer from 1 to 1024, or auto (one per core)',
      ]);
    // Only a process the primary forked is a worker, whatever its environment says.
    expect((await load({ PORTICO_WORKER: '2' })).env.worker).toBeUndefined();
  });
});

describe('BLOB_STORAGE_URL', () => {
  it('is the data folder by default, a folder from the working directory, or an S3 bucket', async () => {
    expect((await load()).env.blobStorageUrl).toBe(`file:${join(dir, '.portico-data', 'blobs')}`);
    expect((await load({ BLOB_STORAGE_URL: 'file:bytes' })).env.blobStorageUrl).toBe(
      `file:${join(dir, 'bytes')}`,
    );
    expect(
      parseBlobStorageUrl(
        's3://portico-blobs/app/bytes/?endpoint=http://127.0.0.1:9000&forcePathStyle=true',
        'eu-x-1',
      ),
    ).toEqual({
      kind: 's3',
      location: {
        bucket: 'portico-blobs',
        prefix: 'app/bytes/',
        endpoint: 'http://127.0.0.1:9000',
        region: 'eu-x-1',
        forcePathStyle: true,
      },
    });
    expect(parseBlobStorageUrl('s3://portico-blobs?region=auto', undefined)).toMatchObject({
      location: { prefix: '', region: 'auto', forcePathStyle: false, endpoint: undefined },
    });
  });

  it('refuses what it cannot use, saying why', async () => {
    for (const [url, why] of [
      ['s3://No_Such_Bucket', /is not a bucket name/],
      ['s3://portico-blobs?endpoint=ftp://x', /endpoint is an http\(s\) URL/],
      ['s3://portico-blobs?forcePathStyle=yes', /forcePathStyle is true or false/],
      ['gs://bucket', /expected file:<folder>, s3:\/\/.*, or database/],
      ['file:', /names no folder/],
    ] as const) {
      expect(await issuesOf(load({ BLOB_STORAGE_URL: url }))).toEqual([
        expect.stringMatching(new RegExp(`^BLOB_STORAGE_URL: .*${why.source}`)),
      ]);
    }
  });

  it('takes database for the store database, but not with a remote store, which holds its own bytes', async () => {
    expect(parseBlobStorageUrl('database', undefined)).toEqual({ kind: 'database' });
    expect((await load({ BLOB_STORAGE_URL: 'database' })).env.blobStorageUrl).toBe('database');
    expect(
      await issuesOf(
        load({ BLOB_STORAGE_URL: 'database', DATABASE_URL: 'portico+https://data.example.com' }),
      ),
    ).toEqual([expect.stringMatching(/^BLOB_STORAGE_URL: .*remote store, which holds its own bytes/)]);
  });
});

describe('module composition', () => {
  const a = defineModule({ name: 'a' });
  const b = defineModule({ name: 'b', dependsOn: ['a'] });

  it('orders modules after their dependencies', () => {
    expect(composeModules([b, a]).map((module) => module.name)).toEqual(['a', 'b']);
  });

  it('refuses duplicates, missing dependencies and cycles, as configuration errors', () => {
    expect(() => composeModules([a, a])).toThrow(ConfigError);
    expect(() => composeModules([a, a])).toThrow('"a" is listed twice');
    expect(() => composeModules([b])).toThrow('"b" depends on missing "a"');
    const x = defineModule({ name: 'x', dependsOn: ['y'] });
    const y = defineModule({ name: 'y', dependsOn: ['x'] });
    expect(() => composeModules([x, y])).toThrow('dependency cycle x -> y -> x');
    expect(() => defineModule({ name: 'Bad Name' })).toThrow(/lower-case/);
  });

  it('refuses two modules claiming one configuration key', async () => {
    const clash = defineModule({ name: 'clash', config: builtinModules[0]!.config! });
    const issues = await issuesOf(
      loadConfig({ cwd: dir, builtinModules: [...builtinModules, clash], env: { PORTICO_SECRET: SECRET } }),
    );
    expect(issues[0]).toMatch(/"clash" and "roles" both declare the config key "roles"/);
  });
});
