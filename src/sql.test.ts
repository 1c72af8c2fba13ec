import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backends, createTestDatabase, type TestDatabase } from '../test/harness.ts';
import { type Databases, openDatabases } from './db.ts';
import { isDatabaseUnavailable } from './errors.ts';
import type { Sql } from './sql.ts';

const log = pino({ level: 'silent' });

describe.each(backends)('prepared statements on %s', (backend) => {
  let dir: string;
  let database: TestDatabase;
  let databases: Databases;
  let sql: Sql;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-sql-'));
    database = await createTestDatabase(backend, dir);
    databases = await openDatabases({
      env: { databaseUrl: database.url, systemDatabaseUrl: database.url },
      modules: [],
      log,
    });
    sql = databases.store!.sql;
    await sql.run('create table if not exists sql_test (id integer primary key, label text not null unique)');
  });
  afterAll(async () => {
    await databases?.close();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => sql.run('delete from sql_test'));

  const labels = async () =>
    (await sql.rows<{ label: string }>('select label from sql_test order by id')).map((row) => row.label);

  it('binds every value: a quote and a question mark are data, not SQL', async () => {
    const label = "it's a ? mark'); drop table sql_test; --";
    await sql.run('insert into sql_test (id, label) values (?, ?)', [1, label]);
    expect(await labels()).toEqual([label]);
    expect(await sql.rows('select id from sql_test where label = ?', [label])).toEqual([{ id: 1 }]);
  });

  it('commits concurrent transactions each on its own: a failing one changes no other’s result', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, id) =>
        sql.transaction(async (tx) => {
          await tx.run('insert into sql_test (id, label) values (?, ?)', [id, `row ${id}`]);
          if (id % 3 === 0) throw new Error(`refused ${id}`);
          return id;
        }),
      ),
    );
    results.forEach((result, id) => {
      if (id % 3 === 0)
        expect(result).toMatchObject({ status: 'rejected', reason: { message: `refused ${id}` } });
      else expect(result).toEqual({ status: 'fulfilled', value: id });
    });
    const kept = Array.from({ length: 40 }, (_, id) => id).filter((id) => id % 3 !== 0);
    expect(await labels()).toEqual(kept.map((id) => `row ${id}`));
  });

  it('rejects the one transaction whose statement breaks a constraint, with the ORM’s exception', async () => {
    await sql.run('insert into sql_test (id, label) values (?, ?)', [1, 'taken']);
    const [clash, other] = await Promise.allSettled([
      sql.transaction((tx) => tx.run('insert into sql_test (id, label) values (?, ?)', [2, 'taken'])),
      sql.transaction((tx) => tx.run('insert into sql_test (id, label) values (?, ?)', [3, 'free'])),
    ]);
    expect(clash).toMatchObject({ status: 'rejected' });
    expect((clash as PromiseRejectedResult).reason).toBeInstanceOf(UniqueConstraintViolationException);
    expect(other).toEqual({ status: 'fulfilled', value: 1 });
    expect(await labels()).toEqual(['taken', 'free']);
  });

  it('rolls a nested transaction back to its savepoint and keeps the rest', async () => {
    await sql.transaction(async (tx) => {
      await tx.run('insert into sql_test (id, label) values (?, ?)', [1, 'outer']);
      await expect(
        tx.transaction(async (inner) => {
          await inner.run('insert into sql_test (id, label) values (?, ?)', [2, 'inner']);
          throw new Error('inner refused');
        }),
      ).rejects.toThrow('inner refused');
      await tx.run('insert into sql_test (id, label) values (?, ?)', [3, 'after']);
    });
    expect(await labels()).toEqual(['outer', 'after']);
  });

  it('counts changed rows, returns written rows, and sees its own writes inside the transaction', async () => {
    const seen = await sql.transaction(async (tx) => {
      await tx.run('insert into sql_test (id, label) values (?, ?), (?, ?)', [1, 'a', 2, 'b']);
      expect(await tx.run('update sql_test set label = label || ? where id > ?', ['!', 0])).toBe(2);
      return tx.rows<{ label: string }>('select label from sql_test order by id');
    });
    expect(seen.map((row) => row.label)).toEqual(['a!', 'b!']);
    // A write with RETURNING outside a transaction is committed like any other.
    expect(
      await sql.rows<{ id: number }>('insert into sql_test (id, label) values (?, ?) returning id', [9, 'c']),
    ).toEqual([{ id: 9 }]);
    expect(await labels()).toEqual(['a!', 'b!', 'c']);
  });

  it('lets ORM transactions and its own take turns on the one connection', async () => {
    const em = databases.store!.em.fork();
    await Promise.all([
      em.transactional(async (tx) => {
        await tx
          .getConnection()
          .execute(
            'insert into sql_test (id, label) values (1, ?)',
            ['orm'],
            'run',
            tx.getTransactionContext(),
          );
      }),
      ...Array.from({ length: 10 }, (_, index) =>
        sql.transaction((tx) =>
          tx.run('insert into sql_test (id, label) values (?, ?)', [index + 2, `own ${index}`]),
        ),
      ),
    ]);
    expect((await labels()).sort()).toEqual(
      ['orm', ...Array.from({ length: 10 }, (_, index) => `own ${index}`)].sort(),
    );
  });

  it.runIf(backend === 'sqlite')(
    'commits the store’s transactions without identity’s fsync, and leaves identity’s setting as it was',
    async () => {
      const synchronous = async () =>
        (
          await databases.system.em
            .fork()
            .getConnection()
            .execute<{ synchronous: number }[]>('pragma synchronous')
        )[0]!.synchronous;
      expect(await synchronous()).toBe(2); // FULL: one file holds identity and store here
      await Promise.all(
        Array.from({ length: 5 }, (_, id) =>
          sql.transaction((tx) =>
            tx.run('insert into sql_test (id, label) values (?, ?)', [id, `row ${id}`]),
          ),
        ),
      );
      await expect(
        sql.transaction(async () => {
          throw new Error('refused');
        }),
      ).rejects.toThrow('refused');
      expect(await synchronous()).toBe(2);
    },
  );

  it('fails a statement on a closed database as an outage', async () => {
    const other = await openDatabases({
      env: { databaseUrl: database.url, systemDatabaseUrl: database.url },
      modules: [],
      log,
    });
    const closed = other.store!.sql;
    await other.close();
    const refused = await closed.rows('select 1').catch((error: unknown) => error);
    expect(isDatabaseUnavailable(refused)).toBe(true);
    const refusedWrite = await closed.run('delete from sql_test').catch((error: unknown) => error);
    expect(isDatabaseUnavailable(refusedWrite)).toBe(true);
  });
});
