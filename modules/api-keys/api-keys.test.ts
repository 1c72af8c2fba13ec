import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ApiKeysDocument,
  CreateApiKeyDocument,
  RevokeApiKeyDocument,
  SetUserDisabledDocument,
  SetUserRolesDocument,
  SignUpDocument,
  ViewerDocument,
} from '../../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

describe.each(backends)('API keys on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let member: TestClient;
  let memberId: string;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: { signup: 'open', roles: { member: ['notes:read', 'notes:write'] }, defaultRoles: ['member'] },
    });
    admin = await bootstrapAdmin(portico);
    member = portico.client();
    const signUp = await member.gql(SignUpDocument, {
      input: { email: 'keys@example.com', password: 'a long enough passphrase' },
    });
    memberId = signUp.data!.signUp.user.id;
  });
  afterAll(() => portico?.close());

  const bearer = (secret: string) =>
    portico.client().gql(ViewerDocument, undefined, { authorization: `Bearer ${secret}` });
  const keysOf = async (client: TestClient, headers?: Record<string, string>) =>
    (await client.gql(ApiKeysDocument, undefined, headers)).data!.viewer;
  const create = async (client: TestClient, name: string, scopes: string[], expiresAt?: string) => {
    const result = await client.gql(CreateApiKeyDocument, { name, scopes, expiresAt });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!.createApiKey;
  };

  it('creates a key shown once, prefixed, and authenticates GraphQL with its scopes', async () => {
    const ticket = await create(member, 'ci runner', ['notes:read']);
    expect(ticket.secret).toMatch(/^pk_[0-9a-f]{16}_[\w-]{43}$/);
    expect(ticket.secret.startsWith(ticket.apiKey.prefix)).toBe(true);
    expect(ticket.secret).not.toBe(ticket.apiKey.prefix);
    expect(ticket.apiKey.scopes).toEqual(['notes:read']);

    const viewer = (await bearer(ticket.secret)).data!.viewer;
    expect(viewer.user?.email).toBe('keys@example.com');
    expect(viewer.session).toBeNull();
    expect(viewer.scopes).toEqual(['notes:read']);
    const { apiKey } = await keysOf(portico.client(), { authorization: `Bearer ${ticket.secret}` });
    expect(apiKey).toMatchObject({ id: ticket.apiKey.id, name: 'ci runner' });

    const listed = await keysOf(member);
    expect(listed.apiKeys.map((key) => key.id)).toContain(ticket.apiKey.id);
    expect(JSON.stringify(listed)).not.toContain(ticket.secret);
    const used = await member.gql<{ node: { lastUsedAt: string | null } }>(
      'query ($id: ID!) { node(id: $id) { ... on ApiKey { lastUsedAt } } }',
      { id: ticket.apiKey.id },
    );
    expect(used.data?.node.lastUsedAt).not.toBeNull();
  });

  it('refuses scopes beyond the viewer’s, bad names and past expiry', async () => {
    const beyond = await member.gql(CreateApiKeyDocument, {
      name: 'too much',
      scopes: ['notes:read', 'admin'],
    });
    expect(codeOf(beyond)).toBe('FORBIDDEN');
    expect(codeOf(await member.gql(CreateApiKeyDocument, { name: '  ', scopes: [] }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await member.gql(CreateApiKeyDocument, { name: 'x'.repeat(101), scopes: [] }))).toBe(
      'BAD_USER_INPUT',
    );
    const past = await member.gql(CreateApiKeyDocument, {
      name: 'stale',
      scopes: [],
      expiresAt: '2020-01-01T00:00:00Z',
    });
    expect(codeOf(past)).toBe('BAD_USER_INPUT');
    expect(codeOf(await portico.client().gql(CreateApiKeyDocument, { name: 'anon', scopes: [] }))).toBe(
      'UNAUTHENTICATED',
    );
    // A key can mint keys, but only within its own (narrower) scopes.
    const narrow = await create(member, 'narrow', ['notes:read']);
    const viaKey = await portico.client().gql(
      CreateApiKeyDocument,
      { name: 'wider', scopes: ['notes:write'] },
      {
        authorization: `Bearer ${narrow.secret}`,
      },
    );
    expect(codeOf(viaKey)).toBe('FORBIDDEN');
  });

  it('treats malformed, unknown and wrong-secret keys as anonymous', async () => {
    const ticket = await create(member, 'probe', []);
    const [, id] = ticket.secret.split('_');
    for (const secret of [
      'pk_nope',
      `pk_${id}_${'A'.repeat(43)}`,
      `pk_${'0'.repeat(16)}_${'A'.repeat(43)}`,
      `${ticket.secret}x`,
    ]) {
      const result = await bearer(secret);
      expect(result.status).toBe(200);
      expect(result.data?.viewer.user).toBeNull();
    }
  });

  it('revokes a key at once; others cannot, admins can', async () => {
    const first = await create(member, 'first', []);
    const second = await create(member, 'second', []);
    const stranger = portico.client();
    await stranger.gql(SignUpDocument, {
      input: { email: 'stranger@example.com', password: 'a long enough passphrase' },
    });
    const foreign = await stranger.gql(RevokeApiKeyDocument, { id: first.apiKey.id });
    expect(codeOf(foreign)).toBe('NOT_FOUND');
    expect((await bearer(first.secret)).data?.viewer.user).not.toBeNull();

    const own = await member.gql(RevokeApiKeyDocument, { id: first.apiKey.id });
    expect(own.data?.revokeApiKey).toBe(true);
    expect((await bearer(first.secret)).data?.viewer.user).toBeNull();
    const again = await member.gql(RevokeApiKeyDocument, { id: first.apiKey.id });
    expect(again.data?.revokeApiKey).toBe(false);

    const byAdmin = await admin.gql(RevokeApiKeyDocument, { id: second.apiKey.id });
    expect(byAdmin.data?.revokeApiKey).toBe(true);
    expect((await bearer(second.secret)).data?.viewer.user).toBeNull();
    const listed = (await keysOf(member)).apiKeys.map((key) => key.id);
    expect(listed).not.toContain(first.apiKey.id);
    expect(listed).not.toContain(second.apiKey.id);
  });

  it('narrows a key when its user loses the scope, and stops it when the key expires', async () => {
    const user = portico.client();
    const signUp = await user.gql(SignUpDocument, {
      input: { email: 'narrowed@example.com', password: 'a long enough passphrase' },
    });
    const ticket = await create(user, 'reader', ['notes:read']);
    const expiring = await create(user, 'brief', [], new Date(Date.now() + 1500).toISOString());
    expect((await bearer(ticket.secret)).data?.viewer.scopes).toEqual(['notes:read']);
    expect((await bearer(expiring.secret)).data?.viewer.user).not.toBeNull();
    await admin.gql(SetUserRolesDocument, { userId: signUp.data!.signUp.user.id, roles: [] });
    const narrowed = await bearer(ticket.secret);
    expect(narrowed.data?.viewer.user?.email).toBe('narrowed@example.com');
    expect(narrowed.data?.viewer.scopes).toEqual([]);
    await sleep(1600);
    expect((await bearer(expiring.secret)).data?.viewer.user).toBeNull();
  });

  it('stops every key of a disabled user', async () => {
    const ticket = await create(member, 'doomed', ['notes:read']);
    expect((await bearer(ticket.secret)).data?.viewer.user).not.toBeNull();
    const disabled = await admin.gql(SetUserDisabledDocument, { userId: memberId, disabled: true });
    expect(disabled.errors).toBeUndefined();
    expect((await bearer(ticket.secret)).data?.viewer.user).toBeNull();
    await admin.gql(SetUserDisabledDocument, { userId: memberId, disabled: false });
    expect((await bearer(ticket.secret)).data?.viewer.user).toBeNull();
  });
});
