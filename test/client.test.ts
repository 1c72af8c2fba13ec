import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type DocumentNode, Kind, parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthDocument,
  ChangePasswordDocument,
  LogInDocument,
  LogInWithDocument,
  LogOutDocument,
  RedeemTokenDocument,
  RequestLoginLinkDocument,
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
} from '../client/generated/graphql.ts';
import {
  ADMIN,
  backends,
  codeOf,
  type GraphQLResponse,
  startGateway,
  type TestClient,
  type TestGateway,
} from './harness.ts';

/** Variables are optional exactly when the operation declares none that are required. */
type VariablesArg<V> = Record<string, never> extends V ? [variables?: V] : [variables: V];

const executed = new Set<string>();

const operationName = (document: DocumentNode) => {
  const operation = document.definitions.find((definition) => definition.kind === Kind.OPERATION_DEFINITION);
  return operation?.name?.value ?? '(anonymous)';
};

/** Sends a generated operation as the harness client would; the result is typed by the document. */
async function execute<R, V>(
  client: TestClient,
  document: TypedDocumentNode<R, V>,
  ...[variables]: VariablesArg<V>
): Promise<GraphQLResponse<R>> {
  executed.add(operationName(document));
  return client.gql(document, variables);
}

/** Like `execute`, for operations that must succeed: their data, or a failure naming the errors. */
async function data<R, V>(
  client: TestClient,
  document: TypedDocumentNode<R, V>,
  ...variables: VariablesArg<V>
): Promise<R> {
  const result = await execute(client, document, ...variables);
  if (result.errors || !result.data) {
    throw new Error(`${operationName(document)} failed: ${JSON.stringify(result.errors)}`);
  }
  return result.data;
}

const PASSWORD = 'a long enough passphrase';

describe.each(backends)('the typed client on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let adminId: string;
  let memberId: string;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: { signup: 'open', roles: { member: ['notes:read'] }, defaultRoles: ['member'] },
    });
    admin = portico.client();
    executed.clear();
  });
  afterAll(() => portico?.close());

  it('tells an anonymous client how to sign in and that a bootstrap is needed', async () => {
    const { auth } = await data(portico.client(), AuthDocument);
    expect(auth.signup).toBe('OPEN');
    expect(auth.methods).toContain('password');
    expect(auth.needsBootstrap).toBe(true);
    const { viewer } = await data(portico.client(), ViewerDocument);
    expect(viewer).toEqual({ user: null, session: null, scopes: [], sessions: [] });
  });

  it('bootstraps the first admin with RedeemToken', async () => {
    const { redeemToken } = await data(admin, RedeemTokenDocument, {
      token: portico.bootstrapToken(),
      profile: ADMIN,
    });
    adminId = redeemToken.user.id;
    expect(redeemToken.user).toMatchObject({
      email: ADMIN.email,
      name: ADMIN.name,
      roles: ['admin'],
      scopes: ['admin'],
      disabled: false,
    });
    expect(redeemToken.session).toMatchObject({ method: 'bootstrap', current: true, revokedAt: null });
    expect(Date.parse(redeemToken.session.expiresAt)).toBeGreaterThan(Date.now());
    const again = await execute(portico.client(), RedeemTokenDocument, { token: portico.bootstrapToken() });
    expect(codeOf(again)).toBe('INVALID_TOKEN');
    expect((await data(portico.client(), AuthDocument)).auth.needsBootstrap).toBe(false);
  });

  it('shows the admin as the viewer, with the current session', async () => {
    const { viewer } = await data(admin, ViewerDocument);
    expect(viewer.user?.id).toBe(adminId);
    expect(viewer.scopes).toEqual(['admin']);
    expect(viewer.session?.current).toBe(true);
    expect(viewer.sessions.map((session) => session.id)).toContain(viewer.session?.id);
    const { roles } = await data(admin, RolesDocument);
    expect(roles).toEqual([
      { name: 'admin', scopes: ['admin'] },
      { name: 'member', scopes: ['notes:read'] },
    ]);
  });

  it('signs up a member and pages through users', async () => {
    const member = portico.client();
    const { signUp } = await data(member, SignUpDocument, {
      input: { email: 'member@example.com', password: PASSWORD, name: 'Mem' },
    });
    memberId = signUp.user.id;
    expect(signUp.user.roles).toEqual(['member']);
    expect(signUp.session.method).toBe('password');
    expect(codeOf(await execute(member, UsersDocument))).toBe('FORBIDDEN');
    expect(codeOf(await execute(member, RolesDocument))).toBe('FORBIDDEN');

    const first = await data(admin, UsersDocument, { first: 1 });
    expect(first.users.edges).toHaveLength(1);
    expect(first.users.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    const rest = await data(admin, UsersDocument, { first: 10, after: first.users.pageInfo.endCursor });
    const emails = [...first.users.edges, ...rest.users.edges].map((edge) => edge.node.email).sort();
    expect(emails).toEqual([ADMIN.email, 'member@example.com']);
    expect(rest.users.pageInfo.hasNextPage).toBe(false);
    const found = await data(admin, UsersDocument, { search: 'MEMBER@' });
    expect(found.users.edges.map((edge) => edge.node)).toEqual([
      expect.objectContaining({ id: memberId, name: 'Mem', scopes: ['notes:read'], disabled: false }),
    ]);
  });

  it('disables and re-enables a user with SetUserDisabled', async () => {
    const member = portico.client();
    await data(member, LogInDocument, { email: 'member@example.com', password: PASSWORD });
    const { setUserDisabled } = await data(admin, SetUserDisabledDocument, {
      userId: memberId,
      disabled: true,
    });
    expect(setUserDisabled).toMatchObject({ id: memberId, disabled: true });
    expect((await data(member, ViewerDocument)).viewer.user).toBeNull();
    const refused = await execute(portico.client(), LogInDocument, {
      email: 'member@example.com',
      password: PASSWORD,
    });
    expect(codeOf(refused)).toBe('INVALID_CREDENTIALS');

    const enabled = await data(admin, SetUserDisabledDocument, { userId: memberId, disabled: false });
    expect(enabled.setUserDisabled.disabled).toBe(false);
    const { logIn } = await data(member, LogInDocument, { email: 'member@example.com', password: PASSWORD });
    expect(logIn.user.id).toBe(memberId);
    expect(logIn.user.lastLoginAt).not.toBeNull();
  });

  it('lists and revokes sessions as admin and as their user', async () => {
    const laptop = portico.client();
    const phone = portico.client();
    const tablet = portico.client();
    for (const client of [laptop, phone, tablet]) {
      await data(client, LogInDocument, { email: 'member@example.com', password: PASSWORD });
    }
    const listed = await data(admin, SessionsDocument, { userId: memberId, first: 100 });
    const ids = listed.sessions.edges.map((edge) => edge.node.id);
    expect(listed.sessions.edges.every((edge) => edge.node.user.id === memberId)).toBe(true);
    const phoneSession = (await data(phone, ViewerDocument)).viewer.session!;
    expect(ids).toContain(phoneSession.id);

    expect((await data(laptop, RevokeSessionDocument, { id: phoneSession.id })).revokeSession).toBe(true);
    expect((await data(phone, ViewerDocument)).viewer.user).toBeNull();
    expect((await data(laptop, RevokeOtherSessionsDocument)).revokeOtherSessions).toBeGreaterThanOrEqual(1);
    expect((await data(tablet, ViewerDocument)).viewer.user).toBeNull();
    expect((await data(laptop, ViewerDocument)).viewer.sessions).toHaveLength(1);

    const { revokeUserSessions } = await data(admin, RevokeUserSessionsDocument, { userId: memberId });
    expect(revokeUserSessions).toBe(1);
    expect((await data(laptop, ViewerDocument)).viewer.user).toBeNull();
    const after = await data(admin, SessionsDocument, { userId: memberId });
    expect(after.sessions.edges).toEqual([]);
  });

  it('changes roles, changes a password and logs out', async () => {
    const { setUserRoles } = await data(admin, SetUserRolesDocument, {
      userId: memberId,
      roles: ['member', 'admin'],
    });
    expect(setUserRoles.roles.sort()).toEqual(['admin', 'member']);
    expect(setUserRoles.scopes).toEqual(['admin', 'notes:read']);
    const demoted = await data(admin, SetUserRolesDocument, { userId: memberId, roles: ['member'] });
    expect(demoted.setUserRoles.scopes).toEqual(['notes:read']);

    const member = portico.client();
    await data(member, LogInDocument, { email: 'member@example.com', password: PASSWORD });
    const wrong = await execute(member, ChangePasswordDocument, {
      currentPassword: 'not the password at all',
      newPassword: 'a brand new passphrase',
    });
    expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
    const changed = await data(member, ChangePasswordDocument, {
      currentPassword: PASSWORD,
      newPassword: 'a brand new passphrase',
    });
    expect(changed.changePassword).toBe(true);

    expect((await data(member, LogOutDocument)).logOut).toBe(true);
    expect(member.cookies.size).toBe(0);
    expect((await data(member, ViewerDocument)).viewer.user).toBeNull();
    const again = await data(member, LogInDocument, {
      email: 'member@example.com',
      password: 'a brand new passphrase',
    });
    expect(again.logIn.user.roles).toEqual(['member']);
  });

  it('logs in with a method by id and asks for a login link', async () => {
    const member = portico.client();
    const { logInWith } = await data(member, LogInWithDocument, {
      method: 'password',
      credentials: { email: 'member@example.com', password: 'a brand new passphrase' },
    });
    expect(logInWith.user.id).toBe(memberId);
    expect(logInWith.session).toMatchObject({ method: 'password', current: true });
    const wrong = await execute(portico.client(), LogInWithDocument, {
      method: 'password',
      credentials: { email: 'member@example.com', password: 'not the password at all' },
    });
    expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
    const { requestLoginLink } = await data(portico.client(), RequestLoginLinkDocument, {
      email: 'member@example.com',
    });
    expect(requestLoginLink).toBe(true);
  });

  it('has exercised every operation of client/operations/identity.graphql', async () => {
    const source = await readFile(
      join(import.meta.dirname, '..', 'client', 'operations', 'identity.graphql'),
      'utf8',
    );
    const operations = parse(source)
      .definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION)
      .map((definition) => definition.name!.value);
    expect(operations.length).toBeGreaterThan(0);
    expect(operations.filter((name) => !executed.has(name))).toEqual([]);
  });
});
