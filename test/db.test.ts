import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineEntity, p } from '@mikro-orm/core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinModules } from '../modules/index.ts';
import { parseDatabaseUrl } from '../src/config.ts';
import { openDatabases } from '../src/db.ts';
import { defineModule } from '../src/index.ts';
import { backends, createTestDatabase, type TestDatabase } from './harness.ts';

const log = pino({ level: 'silent' });

const Note = defineEntity({
  name: 'Note',
  tableName: 'test_notes',
  properties: { id: p.string().primary(), body: p.string() },
});
const notes = defineModule({ name: 'test-notes', entities: { system: [Note] } });

describe('database URLs', () => {
  it('chooses the dialect from the URL', () => {
    expect(parseDatabaseUrl('postgres://u@h/db')).toEqual({
      dialect: 'postgresql',
      url: 'postgres://u@h/db',
    });
    expect(parseDatabaseUrl('postgresql://u@h/db').dialect).toBe('postgresql');
    expect(parseDatabaseUrl('sqlite:/data/p.sqlite')).toEqual({ dialect: 'sqlite', file: '/data/p.sqlite' });
    expect(parseDatabaseUrl('file:///data/p.sqlite')).toEqual({ dialect: 'sqlite', file: '/data/p.sqlite' });
    expect(parseDatabaseUrl('./p.sqlite')).toEqual({ dialect: 'sqlite', file: './p.sqlite' });
    expect(() => parseDatabaseUrl('http://db.example.com/p')).toThrow('unknown scheme "http:"');
    expect(() => parseDatabaseUrl('portico+https://data.example.com')).toThrow(
      'can hold the store (DATABASE_URL) only',
    );
  });
});

describe.each(backends)('schema updates on %s', (backend) => {
  let dir: string;
  let database: TestDatabase;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-db-'));
    database = await createTestDatabase(backend, dir);
  });
  afterAll(async () => {
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });
  const open = (modules = builtinModules) =>
    openDatabases({ env: { databaseUrl: database.url, systemDatabaseUrl: database.url }, modules, log });

  it('creates tables once, keeps a removed module’s data, and never drops anything', async () => {
    const first = await open([...builtinModules, notes]);
    await first.system.em.fork().insert(Note, { id: 'n1', body: 'kept' });
    await first.close();

    // Without the module: its table and rows stay.
    const without = await open();
    const rows = await without.system.em.fork().getConnection().execute('select body from test_notes');
    expect(rows).toEqual([{ body: 'kept' }]);
    await without.close();

    const again = await open([...builtinModules, notes]);
    expect((await again.system.em.fork().findOne(Note, { id: 'n1' }))?.body).toBe('kept');
    const pending = await again.system.orm.schema.getUpdateSchemaSQL({
      safe: true,
      dropTables: false,
      wrap: false,
    });
    expect(pending.trim()).toBe('');
    expect([await again.systemProblem(), await again.storeProblem()]).toEqual([null, null]);
    await again.close();
  });

  it.runIf(backend === 'sqlite')(
    'runs SQLite in WAL, without a blocking busy timeout, and with synchronous=FULL for identity',
    async () => {
      const databases = await open();
      const connection = databases.system.em.fork().getConnection();
      expect(await connection.execute('pragma journal_mode')).toEqual([{ journal_mode: 'wal' }]);
      expect(await connection.execute('pragma synchronous')).toEqual([{ synchronous: 2 }]);
      // Lock waits are asynchronous (src/sqlite.ts): SQLite's own would block the event loop.
      expect(await connection.execute('pragma busy_timeout')).toEqual([{ timeout: 0 }]);
      await databases.close();
    },
  );
});
