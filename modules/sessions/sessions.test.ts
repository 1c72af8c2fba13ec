import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId } from '../../src/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { Session } from './entities.ts';

const VIEWER = '{ viewer { user { id email roles } session { id method current } scopes } }';
const LOG_IN = `mutation ($email: String!, $password: String!) {
  logIn(email: $email, password: $password) { user { id email } session { id method current } }
}`;
const SIGN_UP = `mutation ($input: SignUpInput!) { signUp(input: $input) { user { id email roles } session { id } } }`;

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
    const result = await admin.gql<{
      viewer: { user: { email: string; roles: string[] }; scopes: string[] };
    }>(VIEWER);
    expect(result.data?.viewer.user).toMatchObject({ email: ADMIN.email, roles: ['admin'] });
    expect(result.data?.viewer.scopes).toEqual(['admin']);
    const auth = await portico
      .client()
      .gql<{ auth: { needsBootstrap: boolean } }>('{ auth { needsBootstrap } }');
    expect(auth.data?.auth.needsBootstrap).toBe(false);
  });

  it('sets an HttpOnly, SameSite=Lax, Path=/ session cookie without Domain or Max-Age', async () => {
    const client = portico.client();
    const response = await client.request('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: LOG_IN, variables: { email: ADMIN.email, password: ADMIN.password } }),
    });
    const [cookie] = response.headers.getSetCookie();
    expect(cookie).toMatch(/^portico_session=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Domain|Max-Age|Expires/i);
  });

  it('answers a wrong password and an unknown email identically', async () => {
    const wrong = await portico
      .client()
      .gql(LOG_IN, { email: ADMIN.email, password: 'not the password at all' });
    const unknown = await portico
      .client()
      .gql(LOG_IN, { email: 'nobody@example.com', password: 'not the password at all' });
    expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
    expect(wrong.status).toBe(unknown.status);
    expect(wrong.errors).toEqual(unknown.errors);
    expect(wrong.data).toEqual(unknown.data);
  });

  it('signs up in OPEN mode with the default roles, and refuses a taken address', async () => {
    const client = portico.client();
    const result = await client.gql<{ signUp: { user: { roles: string[] } } }>(SIGN_UP, {
      input: { email: 'Member@Example.com', password: 'a long enough passphrase', name: 'Mem' },
    });
    expect(result.errors).toBeUndefined();
    expect(result.data?.signUp.user.roles).toEqual(['member']);
    const again = await portico.client().gql(SIGN_UP, {
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
      expect(codeOf(await portico.client().gql(SIGN_UP, { input }))).toBe('BAD_USER_INPUT');
    }
    const created = await portico
      .client()
      .gql(SIGN_UP, { input: { email: 'weak@example.com', password: 'x'.repeat(256) } });
    expect(created.errors).toBeUndefined();
  });

  it('gives UNAUTHENTICATED to anonymous and FORBIDDEN to non-admins', async () => {
    const anonymous = await portico.client().gql('{ users { edges { node { id } } } }');
    expect(codeOf(anonymous)).toBe('UNAUTHENTICATED');
    const member = portico.client();
    await member.gql(SIGN_UP, {
      input: { email: 'plain@example.com', password: 'a long enough passphrase' },
    });
    expect(codeOf(await member.gql('{ users { edges { node { id } } } }'))).toBe('FORBIDDEN');
    expect(codeOf(await member.gql('{ roles { name } }'))).toBe('FORBIDDEN');
    expect(codeOf(await member.gql('{ sessions { edges { node { id } } } }'))).toBe('FORBIDDEN');
  });

  it('lets an admin search and page users', async () => {
    const page = await admin.gql<{
      users: {
        edges: { node: { email: string }; cursor: string }[];
        pageInfo: { hasNextPage: boolean; endCursor: string };
      };
    }>('{ users(first: 1) { edges { cursor node { email } } pageInfo { hasNextPage endCursor } } }');
    expect(page.data?.users.edges).toHaveLength(1);
    expect(page.data?.users.pageInfo.hasNextPage).toBe(true);
    const next = await admin.gql<{ users: { edges: { node: { email: string } }[] } }>(
      'query ($after: String) { users(first: 100, after: $after) { edges { node { email } } } }',
      { after: page.data?.users.pageInfo.endCursor },
    );
    const emails = next.data?.users.edges.map((edge) => edge.node.email) ?? [];
    expect(emails).not.toContain(page.data?.users.edges[0]?.node.email);
    const found = await admin.gql<{ users: { edges: { node: { email: string } }[] } }>(
      '{ users(search: "MEMBER@") { edges { node { email } } } }',
    );
    expect(found.data?.users.edges.map((edge) => edge.node.email)).toEqual(['Member@Example.com']);
    expect(codeOf(await admin.gql('{ users(first: -1) { edges { cursor } } }'))).toBe('BAD_USER_INPUT');
    expect(codeOf(await admin.gql('{ users(after: "garbage") { edges { cursor } } }'))).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('caps page sizes at 100', async () => {
    for (const first of [100, 101, 500]) {
      const many = await admin.gql<{ users: { edges: unknown[] } }>(
        `{ users(first: ${first}) { edges { cursor } } }`,
      );
      expect(many.errors).toBeUndefined();
      expect(many.data?.users.edges.length).toBeLessThanOrEqual(100);
    }
  });

  it('disabling a user makes their cookie anonymous at once', async () => {
    const user = portico.client();
    const signUp = await user.gql<{ signUp: { user: { id: string } } }>(SIGN_UP, {
      input: { email: 'disable-me@example.com', password: 'a long enough passphrase' },
    });
    const id = signUp.data!.signUp.user.id;
    expect((await user.gql<{ viewer: { user: { id: string } } }>(VIEWER)).data?.viewer.user.id).toBe(id);
    const disabled = await admin.gql<{ setUserDisabled: { disabled: boolean } }>(
      'mutation ($id: ID!) { setUserDisabled(userId: $id, disabled: true) { disabled } }',
      { id },
    );
    expect(disabled.data?.setUserDisabled.disabled).toBe(true);
    expect((await user.gql<{ viewer: { user: null } }>(VIEWER)).data?.viewer.user).toBeNull();
    const again = await portico
      .client()
      .gql(LOG_IN, { email: 'disable-me@example.com', password: 'a long enough passphrase' });
    expect(codeOf(again)).toBe('INVALID_CREDENTIALS');
  });

  it('changing roles revokes the sessions and applies the new scopes', async () => {
    const user = portico.client();
    const signUp = await user.gql<{ signUp: { user: { id: string } } }>(SIGN_UP, {
      input: { email: 'promote@example.com', password: 'a long enough passphrase' },
    });
    const id = signUp.data!.signUp.user.id;
    const result = await admin.gql<{ setUserRoles: { roles: string[]; scopes: string[] } }>(
      'mutation ($id: ID!) { setUserRoles(userId: $id, roles: ["admin", "member"]) { roles scopes } }',
      { id },
    );
    expect(result.data?.setUserRoles).toEqual({
      roles: ['admin', 'member'],
      scopes: ['admin', 'notes:read'],
    });
    expect((await user.gql<{ viewer: { user: null } }>(VIEWER)).data?.viewer.user).toBeNull();
    const unknownRole = await admin.gql(
      'mutation ($id: ID!) { setUserRoles(userId: $id, roles: ["nope"]) { id } }',
      { id },
    );
    expect(codeOf(unknownRole)).toBe('BAD_USER_INPUT');
    const badId = await admin.gql('mutation { setUserRoles(userId: "garbage", roles: []) { id } }');
    expect(codeOf(badId)).toBe('BAD_USER_INPUT');
  });

  it('keeps the last admin an admin', async () => {
    const isolated = await startGateway({ backend });
    try {
      const root = await bootstrapAdmin(isolated);
      const me = await root.gql<{ viewer: { user: { id: string } } }>(VIEWER);
      const demote = await root.gql('mutation ($id: ID!) { setUserRoles(userId: $id, roles: []) { id } }', {
        id: me.data!.viewer.user.id,
      });
      expect(codeOf(demote)).toBe('CONFLICT');
      const disableSelf = await root.gql(
        'mutation ($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id } }',
        {
          id: me.data!.viewer.user.id,
        },
      );
      expect(codeOf(disableSelf)).toBe('BAD_USER_INPUT');
    } finally {
      await isolated.close();
    }
  });

  it('logs out, revokes one session, others, and all of a user', async () => {
    const first = portico.client();
    await first.gql(SIGN_UP, { input: { email: 'many@example.com', password: 'a long enough passphrase' } });
    const second = portico.client();
    const third = portico.client();
    for (const client of [second, third]) {
      await client.gql(LOG_IN, { email: 'many@example.com', password: 'a long enough passphrase' });
    }
    const sessions = await first.gql<{ viewer: { sessions: { id: string; current: boolean }[] } }>(
      '{ viewer { sessions { id current } } }',
    );
    expect(sessions.data?.viewer.sessions).toHaveLength(3);
    expect(sessions.data?.viewer.sessions.filter((s) => s.current)).toHaveLength(1);

    const others = await first.gql<{ revokeOtherSessions: number }>('mutation { revokeOtherSessions }');
    expect(others.data?.revokeOtherSessions).toBe(2);
    expect((await second.gql<{ viewer: { user: null } }>(VIEWER)).data?.viewer.user).toBeNull();

    const logOut = await first.gql<{ logOut: boolean }>('mutation { logOut }');
    expect(logOut.data?.logOut).toBe(true);
    expect(first.cookies.size).toBe(0);

    const again = portico.client();
    const login = await again.gql<{ logIn: { user: { id: string }; session: { id: string } } }>(LOG_IN, {
      email: 'many@example.com',
      password: 'a long enough passphrase',
    });
    const revokeAll = await admin.gql<{ revokeUserSessions: number }>(
      'mutation ($id: ID!) { revokeUserSessions(userId: $id) }',
      { id: login.data!.logIn.user.id },
    );
    expect(revokeAll.data?.revokeUserSessions).toBe(1);
    expect((await again.gql<{ viewer: { user: null } }>(VIEWER)).data?.viewer.user).toBeNull();
  });

  it('starts a new session on every login and revokes the previous one', async () => {
    const client = portico.client();
    await client.gql(SIGN_UP, {
      input: { email: 'relogin@example.com', password: 'a long enough passphrase' },
    });
    const before = await client.gql<{ viewer: { session: { id: string } } }>(VIEWER);
    const oldCookie = client.cookieHeader;
    await client.gql(LOG_IN, { email: 'relogin@example.com', password: 'a long enough passphrase' });
    const after = await client.gql<{ viewer: { session: { id: string } } }>(VIEWER);
    expect(after.data?.viewer.session.id).not.toBe(before.data?.viewer.session.id);
    const stale = await portico
      .client()
      .gql<{ viewer: { user: null } }>(VIEWER, undefined, { cookie: oldCookie });
    expect(stale.data?.viewer.user).toBeNull();
  });

  it('changes a password, revoking every other session', async () => {
    const client = portico.client();
    await client.gql(SIGN_UP, {
      input: { email: 'changer@example.com', password: 'a long enough passphrase' },
    });
    const other = portico.client();
    await other.gql(LOG_IN, { email: 'changer@example.com', password: 'a long enough passphrase' });
    const wrong = await client.gql(
      'mutation { changePassword(currentPassword: "nope nope nope", newPassword: "a brand new passphrase") }',
    );
    expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
    const weak = await client.gql(
      'mutation { changePassword(currentPassword: "a long enough passphrase", newPassword: "qwerty123") }',
    );
    expect(codeOf(weak)).toBe('BAD_USER_INPUT');
    const ok = await client.gql<{ changePassword: boolean }>(
      'mutation { changePassword(currentPassword: "a long enough passphrase", newPassword: "a brand new passphrase") }',
    );
    expect(ok.data?.changePassword).toBe(true);
    expect((await client.gql<{ viewer: { user: { email: string } } }>(VIEWER)).data?.viewer.user.email).toBe(
      'changer@example.com',
    );
    expect((await other.gql<{ viewer: { user: null } }>(VIEWER)).data?.viewer.user).toBeNull();
    const login = await portico
      .client()
      .gql(LOG_IN, { email: 'changer@example.com', password: 'a brand new passphrase' });
    expect(login.errors).toBeUndefined();
  });

  it('treats tampered, garbage and foreign cookies and bearer headers as anonymous', async () => {
    const client = portico.client();
    await client.gql(LOG_IN, { email: ADMIN.email, password: ADMIN.password });
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
      const result = await portico.client().gql<{ viewer: { user: null } }>(VIEWER, undefined, headers);
      expect(result.status).toBe(200);
      expect(result.data?.viewer.user).toBeNull();
    }
  });

  it('lets users see and revoke their own sessions through node() but not others', async () => {
    const alice = portico.client();
    await alice.gql(SIGN_UP, { input: { email: 'alice@example.com', password: 'a long enough passphrase' } });
    const bob = portico.client();
    await bob.gql(SIGN_UP, { input: { email: 'bob@example.com', password: 'a long enough passphrase' } });
    const aliceSession = (await alice.gql<{ viewer: { session: { id: string } } }>(VIEWER)).data!.viewer
      .session.id;
    const aliceUser = (await alice.gql<{ viewer: { user: { id: string } } }>(VIEWER)).data!.viewer.user.id;

    const own = await alice.gql<{ node: { id: string } | null }>(
      'query ($id: ID!) { node(id: $id) { id } }',
      { id: aliceSession },
    );
    expect(own.data?.node?.id).toBe(aliceSession);
    for (const id of [aliceSession, aliceUser]) {
      const foreign = await bob.gql<{ node: null }>('query ($id: ID!) { node(id: $id) { id } }', { id });
      expect(foreign.data?.node).toBeNull();
    }
    expect(
      codeOf(await bob.gql('mutation ($id: ID!) { revokeSession(id: $id) }', { id: aliceSession })),
    ).toBe('NOT_FOUND');
    const byAdmin = await admin.gql<{ node: { user: { email: string } } }>(
      'query ($id: ID!) { node(id: $id) { ... on Session { user { email } } } }',
      { id: aliceSession },
    );
    expect(byAdmin.data?.node.user.email).toBe('alice@example.com');
    const revoked = await alice.gql<{ revokeSession: boolean }>(
      'mutation ($id: ID!) { revokeSession(id: $id) }',
      { id: aliceSession },
    );
    expect(revoked.data?.revokeSession).toBe(true);
    expect((await alice.gql<{ viewer: { user: null } }>(VIEWER)).data?.viewer.user).toBeNull();
  });

  it('ends sessions past the idle timeout, recording EXPIRED', async () => {
    const client = portico.client();
    const login = await client.gql<{ logIn: { session: { id: string } } }>(LOG_IN, {
      email: ADMIN.email,
      password: ADMIN.password,
    });
    expect(login.errors).toBeUndefined();
    const em = portico.gateway.runtime.db.system.em.fork();
    const id = fromGlobalId(login.data!.logIn.session.id, 'Session');
    // Not used since login (so the gateway knows of no later use), its row says last seen 25 h ago.
    const idle = new Date(Date.now() - 25 * 3_600_000);
    expect(await em.nativeUpdate(Session, { id }, { lastSeenAt: idle })).toBe(1);
    expect((await client.gql<{ viewer: { user: null } }>(VIEWER)).data?.viewer.user).toBeNull();
    const row = await em.fork().findOne(Session, { id });
    expect(row?.revokedReason).toBe('EXPIRED');
  });

  it('keeps sign-up closed in CLOSED mode and needs an invite in INVITE mode', async () => {
    for (const signup of ['closed', 'invite']) {
      const gateway = await startGateway({ backend, config: { signup }, listen: false });
      try {
        const result = await gateway
          .client()
          .gql(SIGN_UP, { input: { email: 'x@example.com', password: 'a long enough passphrase' } });
        expect(codeOf(result)).toBe('SIGNUP_CLOSED');
        if (signup === 'invite') {
          const withToken = await gateway.client().gql(SIGN_UP, {
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
