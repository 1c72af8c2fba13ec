import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthDocument,
  ChangePasswordDocument,
  LogInDocument,
  LogOutDocument,
  RevokeOtherSessionsDocument,
  RevokeSessionDocument,
  RevokeUserSessionsDocument,
  RolesDocument,
  SessionsDocument,
  SetUserDisabledDocument,
  SetUserRolesDocument,
  SignUpDocument,
  UsersDocument,
  ViewerDocument,
} from '../../client/index.ts';
import { fromGlobalId } from '../../src/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  queryText,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { Session } from './entities.ts';

describe.each(backends)('sessions on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: {
        signup: 'open',
        roles: { member: ['notes:read'] },
        defaultRoles: ['member'],
        // Every client here signs up from 127.0.0.1.
        rateLimits: { signUps: 1000 },
      },
    });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('makes the bootstrap redeemer an admin who is signed in', async () => {
    const result = await admin.gql(ViewerDocument);
    expect(result.data?.viewer.user).toMatchObject({ email: ADMIN.email, roles: ['admin'] });
    expect(result.data?.viewer.scopes).toEqual(['admin']);
    const auth = await portico.client().gql(AuthDocument);
    expect(auth.data?.auth.needsBootstrap).toBe(false);
  });

  it('sets an HttpOnly, SameSite=Lax, Path=/ session cookie without Domain or Max-Age', async () => {
    const client = portico.client();
    const response = await client.request('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: queryText(LogInDocument),
        variables: { email: ADMIN.email, password: ADMIN.password },
      }),
    });
    const [cookie] = response.headers.getSetCookie();
    expect(cookie).toMatch(/^portico_session=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Domain|Max-Age|Expires/i);
  });

  it('answers a wrong password and an unknown email identically', async () => {
    // One request id for both: it is the only part of an answer that may differ.
    const sameId = { 'x-request-id': 'login-attempt' };
    const wrong = await portico
      .client()
      .gql(LogInDocument, { email: ADMIN.email, password: 'not the password at all' }, sameId);
    const unknown = await portico
      .client()
      .gql(LogInDocument, { email: 'nobody@example.com', password: 'not the password at all' }, sameId);
    expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
    expect(wrong.status).toBe(unknown.status);
    expect(wrong.errors).toEqual(unknown.errors);
    expect(wrong.data).toEqual(unknown.data);
  });

  it('signs up in OPEN mode with the default roles, and refuses a taken address', async () => {
    const client = portico.client();
    const result = await client.gql(SignUpDocument, {
      input: { email: 'Member@Example.com', password: 'a long enough passphrase', name: 'Mem' },
    });
    expect(result.errors).toBeUndefined();
    expect(result.data?.signUp.user.roles).toEqual(['member']);
    const again = await portico.client().gql(SignUpDocument, {
      input: { email: 'member@example.COM', password: 'another long passphrase' },
    });
    expect(codeOf(again)).toBe('CONFLICT');
  });

  it('rejects weak passwords and bad addresses with BAD_USER_INPUT, creating nothing', async () => {
    for (const input of [
      { email: 'weak@example.com', password: 'short' },
      { email: 'weak@example.com', password: 'password123' },
      { email: 'weak@example.com', password: 'x'.repeat(257) },
      { email: 'not-an-email', password: 'a long enough passphrase' },
    ]) {
      expect(codeOf(await portico.client().gql(SignUpDocument, { input }))).toBe('BAD_USER_INPUT');
    }
    const created = await portico
      .client()
      .gql(SignUpDocument, { input: { email: 'weak@example.com', password: 'x'.repeat(256) } });
    expect(created.errors).toBeUndefined();
  });

  it('gives UNAUTHENTICATED to anonymous and FORBIDDEN to non-admins', async () => {
    const anonymous = await portico.client().gql(UsersDocument);
    expect(codeOf(anonymous)).toBe('UNAUTHENTICATED');
    const member = portico.client();
    await member.gql(SignUpDocument, {
      input: { email: 'plain@example.com', password: 'a long enough passphrase' },
    });
    expect(codeOf(await member.gql(UsersDocument))).toBe('FORBIDDEN');
    expect(codeOf(await member.gql(RolesDocument))).toBe('FORBIDDEN');
    expect(codeOf(await member.gql(SessionsDocument))).toBe('FORBIDDEN');
  });

  it('lets an admin search and page users', async () => {
    const page = await admin.gql(UsersDocument, { first: 1 });
    expect(page.data?.users.edges).toHaveLength(1);
    expect(page.data?.users.pageInfo.hasNextPage).toBe(true);
    const next = await admin.gql(UsersDocument, { first: 100, after: page.data?.users.pageInfo.endCursor });
    const emails = next.data?.users.edges.map((edge) => edge.node.email) ?? [];
    expect(emails).not.toContain(page.data?.users.edges[0]?.node.email);
    const found = await admin.gql(UsersDocument, { search: 'MEMBER@' });
    expect(found.data?.users.edges.map((edge) => edge.node.email)).toEqual(['Member@Example.com']);
    expect(codeOf(await admin.gql(UsersDocument, { first: -1 }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await admin.gql(UsersDocument, { after: 'garbage' }))).toBe('BAD_USER_INPUT');
  });

  it('caps page sizes at 100', async () => {
    for (const first of [100, 101, 500]) {
      // The least selection: a fuller one at first: 500 is over the cost limit before any cap.
      const many = await admin.gql<{ users: { edges: unknown[] } }>(
        `{ users(first: ${first}) { edges { cursor } } }`,
      );
      expect(many.errors).toBeUndefined();
      expect(many.data?.users.edges.length).toBeLessThanOrEqual(100);
    }
  });

  it('disabling a user makes their cookie anonymous at once', async () => {
    const user = portico.client();
    const signUp = await user.gql(SignUpDocument, {
      input: { email: 'disable-me@example.com', password: 'a long enough passphrase' },
    });
    const id = signUp.data!.signUp.user.id;
    expect((await user.gql(ViewerDocument)).data?.viewer.user?.id).toBe(id);
    const disabled = await admin.gql(SetUserDisabledDocument, { userId: id, disabled: true });
    expect(disabled.data?.setUserDisabled.disabled).toBe(true);
    expect((await user.gql(ViewerDocument)).data?.viewer.user).toBeNull();
    const again = await portico
      .client()
      .gql(LogInDocument, { email: 'disable-me@example.com', password: 'a long enough passphrase' });
    expect(codeOf(again)).toBe('INVALID_CREDENTIALS');
  });

  it('changing roles revokes the sessions and applies the new scopes', async () => {
    const user = portico.client();
    const signUp = await user.gql(SignUpDocument, {
      input: { email: 'promote@example.com', password: 'a long enough passphrase' },
    });
    const id = signUp.data!.signUp.user.id;
    const result = await admin.gql(SetUserRolesDocument, { userId: id, roles: ['admin', 'member'] });
    expect(result.data?.setUserRoles).toMatchObject({
      roles: ['admin', 'member'],
      scopes: ['admin', 'notes:read'],
    });
    expect((await user.gql(ViewerDocument)).data?.viewer.user).toBeNull();
    const unknownRole = await admin.gql(SetUserRolesDocument, { userId: id, roles: ['nope'] });
    expect(codeOf(unknownRole)).toBe('BAD_USER_INPUT');
    const badId = await admin.gql(SetUserRolesDocument, { userId: 'garbage', roles: [] });
    expect(codeOf(badId)).toBe('BAD_USER_INPUT');
  });

  it('keeps the last admin an admin', async () => {
    const isolated = await startGateway({ backend });
    try {
      const root = await bootstrapAdmin(isolated);
      const me = await root.gql(ViewerDocument);
      const demote = await root.gql(SetUserRolesDocument, { userId: me.data!.viewer.user!.id, roles: [] });
      expect(codeOf(demote)).toBe('CONFLICT');
      const disableSelf = await root.gql(SetUserDisabledDocument, {
        userId: me.data!.viewer.user!.id,
        disabled: true,
      });
      expect(codeOf(disableSelf)).toBe('BAD_USER_INPUT');
    } finally {
      await isolated.close();
    }
  });

  it('logs out, revokes one session, others, and all of a user', async () => {
    const first = portico.client();
    await first.gql(SignUpDocument, {
      input: { email: 'many@example.com', password: 'a long enough passphrase' },
    });
    const second = portico.client();
    const third = portico.client();
    for (const client of [second, third]) {
      await client.gql(LogInDocument, { email: 'many@example.com', password: 'a long enough passphrase' });
    }
    const sessions = await first.gql(ViewerDocument);
    expect(sessions.data?.viewer.sessions).toHaveLength(3);
    expect(sessions.data?.viewer.sessions.filter((s) => s.current)).toHaveLength(1);

    const others = await first.gql(RevokeOtherSessionsDocument);
    expect(others.data?.revokeOtherSessions).toBe(2);
    expect((await second.gql(ViewerDocument)).data?.viewer.user).toBeNull();

    const logOut = await first.gql(LogOutDocument);
    expect(logOut.data?.logOut).toBe(true);
    expect(first.cookies.size).toBe(0);

    const again = portico.client();
    const login = await again.gql(LogInDocument, {
      email: 'many@example.com',
      password: 'a long enough passphrase',
    });
    const revokeAll = await admin.gql(RevokeUserSessionsDocument, { userId: login.data!.logIn.user.id });
    expect(revokeAll.data?.revokeUserSessions).toBe(1);
    expect((await again.gql(ViewerDocument)).data?.viewer.user).toBeNull();
  });

  it('starts a new session on every login and revokes the previous one', async () => {
    const client = portico.client();
    await client.gql(SignUpDocument, {
      input: { email: 'relogin@example.com', password: 'a long enough passphrase' },
    });
    const before = await client.gql(ViewerDocument);
    const oldCookie = client.cookieHeader;
    await client.gql(LogInDocument, { email: 'relogin@example.com', password: 'a long enough passphrase' });
    const after = await client.gql(ViewerDocument);
    expect(after.data?.viewer.session?.id).not.toBe(before.data?.viewer.session?.id);
    const stale = await portico.client().gql(ViewerDocument, undefined, { cookie: oldCookie });
    expect(stale.data?.viewer.user).toBeNull();
  });

  it('changes a password, revoking every other session', async () => {
    const client = portico.client();
    await client.gql(SignUpDocument, {
      input: { email: 'changer@example.com', password: 'a long enough passphrase' },
    });
    const other = portico.client();
    await other.gql(LogInDocument, { email: 'changer@example.com', password: 'a long enough passphrase' });
    const wrong = await client.gql(ChangePasswordDocument, {
      currentPassword: 'nope nope nope',
      newPassword: 'a brand new passphrase',
    });
    expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
    const weak = await client.gql(ChangePasswordDocument, {
      currentPassword: 'a long enough passphrase',
      newPassword: 'qwerty123',
    });
    expect(codeOf(weak)).toBe('BAD_USER_INPUT');
    const ok = await client.gql(ChangePasswordDocument, {
      currentPassword: 'a long enough passphrase',
      newPassword: 'a brand new passphrase',
    });
    expect(ok.data?.changePassword).toBe(true);
    expect((await client.gql(ViewerDocument)).data?.viewer.user?.email).toBe('changer@example.com');
    expect((await other.gql(ViewerDocument)).data?.viewer.user).toBeNull();
    const login = await portico
      .client()
      .gql(LogInDocument, { email: 'changer@example.com', password: 'a brand new passphrase' });
    expect(login.errors).toBeUndefined();
  });

  it('treats tampered, garbage and foreign cookies and bearer headers as anonymous', async () => {
    const client = portico.client();
    await client.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
    const sealed = client.cookies.get('portico_session')!;
    const tampered = `${sealed.slice(0, -4)}${sealed.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    const attempts: Record<string, string>[] = [
      { cookie: `portico_session=${tampered}` },
      { cookie: 'portico_session=garbage' },
      { cookie: `portico_session=${'A'.repeat(5000)}` },
      { cookie: 'portico_session=Fe26.2**x*y*z*w*v*u' },
      { cookie: '=;;portico_session' },
      { authorization: 'Bearer nonsense' },
      { authorization: 'Basic Zm9vOmJhcg==' },
    ];
    for (const headers of attempts) {
      const result = await portico.client().gql(ViewerDocument, undefined, headers);
      expect(result.status).toBe(200);
      expect(result.data?.viewer.user).toBeNull();
    }
  });

  it('lets users see and revoke their own sessions through node() but not others', async () => {
    const alice = portico.client();
    await alice.gql(SignUpDocument, {
      input: { email: 'alice@example.com', password: 'a long enough passphrase' },
    });
    const bob = portico.client();
    await bob.gql(SignUpDocument, {
      input: { email: 'bob@example.com', password: 'a long enough passphrase' },
    });
    const aliceSession = (await alice.gql(ViewerDocument)).data!.viewer.session!.id;
    const aliceUser = (await alice.gql(ViewerDocument)).data!.viewer.user!.id;

    const own = await alice.gql<{ node: { id: string } | null }>(
      'query ($id: ID!) { node(id: $id) { id } }',
      { id: aliceSession },
    );
    expect(own.data?.node?.id).toBe(aliceSession);
    for (const id of [aliceSession, aliceUser]) {
      const foreign = await bob.gql<{ node: null }>('query ($id: ID!) { node(id: $id) { id } }', { id });
      expect(foreign.data?.node).toBeNull();
    }
    expect(codeOf(await bob.gql(RevokeSessionDocument, { id: aliceSession }))).toBe('NOT_FOUND');
    const byAdmin = await admin.gql<{ node: { user: { email: string } } }>(
      'query ($id: ID!) { node(id: $id) { ... on Session { user { email } } } }',
      { id: aliceSession },
    );
    expect(byAdmin.data?.node.user.email).toBe('alice@example.com');
    const revoked = await alice.gql(RevokeSessionDocument, { id: aliceSession });
    expect(revoked.data?.revokeSession).toBe(true);
    expect((await alice.gql(ViewerDocument)).data?.viewer.user).toBeNull();
  });

  it('ends sessions past the idle timeout, recording EXPIRED', async () => {
    const client = portico.client();
    const login = await client.gql(LogInDocument, {
      email: ADMIN.email,
      password: ADMIN.password,
    });
    expect(login.errors).toBeUndefined();
    const em = portico.gateway.runtime.db.system.em.fork();
    const id = fromGlobalId(login.data!.logIn.session.id, 'Session');
    // Not used since login (so the gateway knows of no later use), its row says last seen 25 h ago.
    const idle = new Date(Date.now() - 25 * 3_600_000);
    expect(await em.nativeUpdate(Session, { id }, { lastSeenAt: idle })).toBe(1);
    expect((await client.gql(ViewerDocument)).data?.viewer.user).toBeNull();
    const row = await em.fork().findOne(Session, { id });
    expect(row?.revokedReason).toBe('EXPIRED');
  });

  it('keeps sign-up closed in CLOSED mode and needs an invite in INVITE mode', async () => {
    for (const signup of ['closed', 'invite']) {
      const gateway = await startGateway({ backend, config: { signup }, listen: false });
      try {
        const result = await gateway
          .client()
          .gql(SignUpDocument, { input: { email: 'x@example.com', password: 'a long enough passphrase' } });
        expect(codeOf(result)).toBe('SIGNUP_CLOSED');
        if (signup === 'invite') {
          const withToken = await gateway.client().gql(SignUpDocument, {
            input: {
              email: 'x@example.com',
              password: 'a long enough passphrase',
              inviteToken: gateway.bootstrapToken(),
            },
          });
          expect(codeOf(withToken)).toBe('INVALID_TOKEN');
        }
      } finally {
        await gateway.close();
      }
    }
  });
});
