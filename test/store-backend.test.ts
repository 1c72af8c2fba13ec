import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateApiKeyDocument, StoreBackendDocument } from '../client/index.ts';
import { describeUrl } from '../src/store/open.ts';
import {
  type Backend,
  backends,
  bootstrapAdmin,
  signUpClient,
  startGateway,
  type TestClient,
  type TestGateway,
} from './harness.ts';
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

describe.each(backends)('storeBackend on %s', (backend: Backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let startedAt: number;

  beforeAll(async () => {
    startedAt = Date.now();
    portico = await startGateway({ backend, config: { signup: 'open' } });
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
    expectRefusal(await portico.client().gql(StoreBackendDocument), 'UNAUTHENTICATED');
    const member = await signUpClient(portico, 'member@example.com', 'a long enough passphrase');
    expectRefusal(await member.gql(StoreBackendDocument), 'FORBIDDEN');
    const ticket = await admin.gql(CreateApiKeyDocument, { name: 'narrow', scopes: [] });
    const narrow = portico.client();
    const answer = await narrow.gql(StoreBackendDocument, undefined, {
      authorization: `Bearer ${ticket.data!.createApiKey.secret}`,
    });
    expectRefusal(answer, 'FORBIDDEN');
  });
});
