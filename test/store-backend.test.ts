import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditEventsDocument,
  CreateApiKeyDocument,
  DocumentDocument,
  LogInDocument,
  PutDocumentDocument,
  ReconnectStoreBackendDocument,
  ResetStoreBackendDocument,
  StoreBackendDocument,
  SwitchStoreBackendDocument,
} from '../client/index.ts';
import { describeUrl } from '../src/store/open.ts';
import {
  ADMIN,
  type Backend,
  backends,
  bootstrapAdmin,
  createTestDatabase,
  freePort,
  signUpClient,
  startGateway,
  type TestClient,
  type TestDatabase,
  type TestGateway,
} from './harness.ts';
import { Outage } from './outage.ts';
import { expectRefusal } from './security/answers.ts';

describe('describeUrl', () => {
  it('names the kind and keeps no password', () => {
    expect(
      describeUrl('postgres://portico:hunter2@db.example:5432/app?password=also&sslmode=require'),
    ).toEqual({
      kind: 'postgres',
      url: 'postgres://portico@db.example:5432/app?sslmode=require',
    });
    expect(describeUrl('/var/lib/portico/store.sqlite')).toEqual({
      kind: 'sqlite',
      url: 'sqlite:/var/lib/portico/store.sqlite',
    });
    expect(describeUrl('sqlite:data/store.sqlite')).toEqual({
      kind: 'sqlite',
      url: 'sqlite:data/store.sqlite',
    });
  });
});

const NOTES = { notes: { indexes: { bySlug: { fields: ['slug'], unique: true } } } };

describe.each(backends)('storeBackend on %s', (backend: Backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let startedAt: number;

  beforeAll(async () => {
    startedAt = Date.now();
    portico = await startGateway({ backend, config: { signup: 'open', collections: NOTES } });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('tells admins which backend holds the store, since when, and that it answers', async () => {
    const { data, errors } = await admin.gql(StoreBackendDocument);
    expect(errors).toBeUndefined();
    const { since, ...rest } = data!.storeBackend;
    expect(rest).toEqual({
      kind: backend === 'sqlite' ? 'SQLITE' : 'POSTGRES',
      url: describeUrl(portico.databaseUrl).url,
      status: 'READY',
      reason: null,
      source: 'ENVIRONMENT',
    });
    expect(Date.parse(since)).toBeGreaterThanOrEqual(startedAt - 1000);
    expect(Date.parse(since)).toBeLessThanOrEqual(Date.now());
  });

  it('is for admins only: anonymous, members and an admin’s key without the admin scope are refused', async () => {
    const member = await signUpClient(portico, 'member@example.com', 'a long enough passphrase');
    // An admin's own key without the scope admin: a key acts only within its scopes.
    const ticket = await admin.gql(CreateApiKeyDocument, { name: 'narrow', scopes: [] });
    const narrow = { authorization: `Bearer ${ticket.data!.createApiKey.secret}` };
    const refused: [TestClient, Record<string, string>, string][] = [
      [portico.client(), {}, 'UNAUTHENTICATED'],
      [member, {}, 'FORBIDDEN'],
      [portico.client(), narrow, 'FORBIDDEN'],
    ];
    for (const [client, headers, code] of refused) {
      expectRefusal(await client.gql(StoreBackendDocument, undefined, headers), code);
      expectRefusal(
        await client.gql(SwitchStoreBackendDocument, { url: 'sqlite:other.sqlite' }, headers),
        code,
      );
      expectRefusal(await client.gql(ResetStoreBackendDocument, undefined, headers), code);
      expectRefusal(await client.gql(ReconnectStoreBackendDocument, undefined, headers), code);
    }
    expect((await admin.gql(StoreBackendDocument)).data?.storeBackend.source).toBe('ENVIRONMENT');
  });
});

/** A document of `notes`, or null when this store has none of that id. */
const noteOf = async (client: TestClient, id: string) => {
  const { data, errors } = await client.gql(DocumentDocument, { collection: 'notes', id });
  expect(errors).toBeUndefined();
  return data?.document?.data ?? null;
};

describe.each(backends)('switching the store on %s', (backend: Backend) => {
  /** The gateway that made the databases, which its `close` drops. */
  let first: TestGateway;
  let portico: TestGateway;
  let admin: TestClient;
  let other: TestDatabase;
  let otherUrl: string;

  beforeAll(async () => {
    portico = first = await startGateway({ backend, config: { collections: NOTES } });
    admin = await bootstrapAdmin(portico);
    other = await createTestDatabase(backend, portico.dataDir, 'other');
    otherUrl = other.url;
    const put = await admin.gql(PutDocumentDocument, {
      collection: 'notes',
      id: 'before',
      data: { slug: 'a' },
    });
    expect(put.errors).toBeUndefined();
  });
  afterAll(async () => {
    await portico?.close();
    await first?.close();
    await other?.drop();
  });

  it('switches to another database, copying nothing, and says so in the audit log', async () => {
    const switched = await admin.gql(SwitchStoreBackendDocument, { url: otherUrl });
    expect(switched.errors).toBeUndefined();
    expect(switched.data?.switchStoreBackend).toMatchObject({
      kind: backend === 'sqlite' ? 'SQLITE' : 'POSTGRES',
      url: describeUrl(otherUrl).url,
      status: 'READY',
      reason: null,
      source: 'SWITCH',
    });
    // Data is not copied: the new store is empty, and its indexes are built (a unique slug holds).
    expect(await noteOf(admin, 'before')).toBeNull();
    expect(
      (await admin.gql(PutDocumentDocument, { collection: 'notes', id: 'after', data: { slug: 'a' } }))
        .errors,
    ).toBeUndefined();
    expectRefusal(
      await admin.gql(PutDocumentDocument, { collection: 'notes', id: 'twin', data: { slug: 'a' } }),
      'CONFLICT',
    );
    // Identity never moves: the admin is still signed in, the users are all there.
    const events = await admin.gql(AuditEventsDocument, { kind: 'STORE_SWITCHED' });
    expect(events.data?.auditEvents.edges.map((edge) => edge.node.detail)).toEqual([
      { kind: backend === 'sqlite' ? 'sqlite' : 'postgres', url: describeUrl(otherUrl).url },
    ]);
  });

  it('refuses a URL it cannot use and changes nothing', async () => {
    const unreachable = `postgres://postgres:hunter2@127.0.0.1:${await freePort()}/portico`;
    const refusals: [string, string][] = [
      ['mysql://db/portico', 'BAD_USER_INPUT'],
      ['portico+http://data.example', 'BAD_USER_INPUT'],
      ['portico+https://key:hunter2@data.example', 'BAD_USER_INPUT'],
      [`portico+http://127.0.0.1:${await freePort()}`, 'SERVICE_UNAVAILABLE'],
      ['sqlite:../outside.sqlite', 'BAD_USER_INPUT'],
      ['/etc/portico.sqlite', 'BAD_USER_INPUT'],
      [':memory:', 'BAD_USER_INPUT'],
      [`sqlite:${'x'.repeat(3000)}`, 'BAD_USER_INPUT'],
      [unreachable, 'SERVICE_UNAVAILABLE'],
    ];
    for (const [url, code] of refusals) {
      const answer = await admin.gql(SwitchStoreBackendDocument, { url });
      expectRefusal(answer, code);
      expect(JSON.stringify(answer)).not.toContain('hunter2');
    }
    const now = await admin.gql(StoreBackendDocument);
    expect(now.data?.storeBackend).toMatchObject({
      url: describeUrl(otherUrl).url,
      status: 'READY',
      source: 'SWITCH',
    });
    expect(await noteOf(admin, 'after')).toEqual({ slug: 'a' });
  });

  it('reconnects to the same store', async () => {
    const reconnected = await admin.gql(ReconnectStoreBackendDocument);
    expect(reconnected.data?.reconnectStoreBackend).toMatchObject({
      url: describeUrl(otherUrl).url,
      status: 'READY',
      source: 'SWITCH',
    });
    expect(await noteOf(admin, 'after')).toEqual({ slug: 'a' });
  });

  it('fails no request that runs while the store switches back and forth', async () => {
    let writing = true;
    const failures: unknown[] = [];
    const writers = Array.from({ length: 4 }, async (_, writer) => {
      for (let n = 0; writing; n++) {
        const id = `load-${writer}-${n}`;
        const put = await admin.gql(PutDocumentDocument, { collection: 'notes', id, data: { slug: id } });
        const read = await admin.gql(DocumentDocument, { collection: 'notes', id: 'after' });
        for (const answer of [put, read]) if (answer.errors) failures.push(answer.errors);
      }
    });
    for (let round = 0; round < 5; round++) {
      expect((await admin.gql(ResetStoreBackendDocument)).errors).toBeUndefined();
      expect((await admin.gql(SwitchStoreBackendDocument, { url: otherUrl })).errors).toBeUndefined();
    }
    writing = false;
    await Promise.all(writers);
    expect(failures).toEqual([]);
  });

  it('keeps the choice over a restart, then goes back to DATABASE_URL on reset', async () => {
    await portico.stop();
    portico = await startGateway({
      backend,
      config: { collections: NOTES },
      dataDir: portico.dataDir,
      databaseUrl: portico.databaseUrl,
    });
    const again = portico.client();
    expect(
      (await again.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
    expect((await again.gql(StoreBackendDocument)).data?.storeBackend).toMatchObject({
      source: 'SWITCH',
      status: 'READY',
    });
    expect(await noteOf(again, 'after')).toEqual({ slug: 'a' });

    const reset = await again.gql(ResetStoreBackendDocument);
    expect(reset.data?.resetStoreBackend).toMatchObject({
      source: 'ENVIRONMENT',
      url: describeUrl(portico.databaseUrl).url,
    });
    expect(await noteOf(again, 'before')).toEqual({ slug: 'a' });
    expect(await noteOf(again, 'after')).toBeNull();
    const kinds = (await again.gql(AuditEventsDocument, {})).data?.auditEvents.edges.map(
      (edge) => edge.node.kind,
    );
    // Newest first: the reset, the five rounds of switching under load, the reconnect, the switch.
    expect(kinds?.filter((kind) => kind.startsWith('STORE_'))).toEqual([
      'STORE_RESET',
      ...Array.from({ length: 5 }, () => ['STORE_SWITCHED', 'STORE_RESET']).flat(),
      'STORE_RECONNECTED',
      'STORE_SWITCHED',
    ]);
  });
});

describe.runIf(backends.includes('postgres'))('the store of several instances on postgres', () => {
  let first: TestGateway;
  let second: TestGateway;
  let chosen: TestDatabase;
  let proxied: string;
  let secondDir: string;
  const outage = { instance: undefined as Outage | undefined };

  beforeAll(async () => {
    first = await startGateway({ backend: 'postgres', config: { collections: NOTES } });
    // A second instance of the same deployment: the same system database and store.
    secondDir = await mkdtemp(join(tmpdir(), 'portico-second-'));
    second = await startGateway({
      backend: 'postgres',
      config: { collections: NOTES },
      databaseUrl: first.databaseUrl,
      dataDir: secondDir,
    });
    chosen = await createTestDatabase('postgres', first.dataDir, 'chosen');
    ({ outage: outage.instance, url: proxied } = await Outage.before(chosen.url));
  });
  afterAll(async () => {
    await second?.stop();
    await first?.close();
    await outage.instance?.down();
    await chosen?.drop();
    await rm(secondDir, { recursive: true, force: true });
  });

  it('moves every instance within 5 s, and a restart with the chosen store away waits for it', async () => {
    const admin = await bootstrapAdmin(first);
    const switched = await admin.gql(SwitchStoreBackendDocument, { url: proxied });
    expect(switched.errors).toBeUndefined();
    const onSecond = second.client();
    expect(
      (await onSecond.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
    await expect
      .poll(async () => (await onSecond.gql(StoreBackendDocument)).data?.storeBackend.source, {
        timeout: 5000,
        interval: 100,
      })
      .toBe('SWITCH');
    expect(
      (await admin.gql(PutDocumentDocument, { collection: 'notes', id: 'shared', data: { slug: 's' } }))
        .errors,
    ).toBeUndefined();
    expect(await noteOf(onSecond, 'shared')).toEqual({ slug: 's' });

    // The chosen store goes away, and the second instance restarts: it does not serve DATABASE_URL's
    // store in its place; identity works; the store comes back without another restart.
    await second.stop();
    await outage.instance!.down();
    second = await startGateway({
      backend: 'postgres',
      config: { collections: NOTES },
      databaseUrl: first.databaseUrl,
      dataDir: secondDir,
    });
    const restarted = second.client();
    expect(
      (await restarted.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
    const away = await restarted.gql(StoreBackendDocument);
    expect(away.data?.storeBackend).toMatchObject({ source: 'SWITCH', status: 'UNAVAILABLE' });
    expect(away.data?.storeBackend.reason).toBeTruthy();
    expectRefusal(
      await restarted.gql(DocumentDocument, { collection: 'notes', id: 'shared' }),
      'SERVICE_UNAVAILABLE',
    );
    expect((await fetch(new URL('/ready', second.url))).status).toBe(503);

    // An admin's refused switch meanwhile leaves it so, still retrying the chosen store.
    expectRefusal(
      await restarted.gql(SwitchStoreBackendDocument, { url: 'mysql://db/portico' }),
      'BAD_USER_INPUT',
    );
    await outage.instance!.up();
    await expect
      .poll(async () => (await restarted.gql(StoreBackendDocument)).data?.storeBackend.status, {
        timeout: 15_000,
        interval: 250,
      })
      .toBe('READY');
    expect(await noteOf(restarted, 'shared')).toEqual({ slug: 's' });
  }, 60_000);
});
