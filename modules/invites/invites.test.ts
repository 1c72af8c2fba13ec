import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateInviteDocument,
  InvitesDocument,
  RedeemTokenDocument,
  RevokeInviteDocument,
  SignUpDocument,
} from '../../client/index.ts';
import { fromGlobalId } from '../../src/index.ts';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import sessions from '../sessions/index.ts';

describe.each(backends)('invites on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: {
        signup: 'invite',
        roles: { member: ['notes:read'], editor: ['notes:write'] },
        defaultRoles: ['member'],
      },
    });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  const invite = async (email: string, roles?: string[]) => {
    const result = await admin.gql(CreateInviteDocument, { email, roles });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!.createInvite;
  };

  it('creates an invite with an absolute link from the public URL, expiring in 7 days', async () => {
    const ticket = await invite('Colleague@Example.com', ['editor']);
    expect(ticket.url).toBe(`http://portico.test/auth/redeem?token=${ticket.token}`);
    expect(ticket.invite).toMatchObject({
      email: 'Colleague@Example.com',
      roles: ['editor'],
      acceptedAt: null,
    });
    expect(ticket.invite.invitedBy?.email).toBe('admin@example.com');
    const days = (Date.parse(ticket.invite.expiresAt) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(6.99);
    expect(days).toBeLessThanOrEqual(7);
  });

  it('accepts an invite through redeemToken: fixed email, invite roles, signed in', async () => {
    const ticket = await invite('redeem@example.com', ['editor']);
    const wrongAddress = await portico.client().gql(RedeemTokenDocument, {
      token: ticket.token,
      profile: { email: 'other@example.com', password: 'a long enough passphrase' },
    });
    expect(codeOf(wrongAddress)).toBe('BAD_USER_INPUT');
    const weak = await portico
      .client()
      .gql(RedeemTokenDocument, { token: ticket.token, profile: { password: 'password1' } });
    expect(codeOf(weak)).toBe('BAD_USER_INPUT');

    const invitee = portico.client();
    const accepted = await invitee.gql(RedeemTokenDocument, {
      token: ticket.token,
      profile: { password: 'a long enough passphrase', name: 'Red' },
    });
    expect(accepted.errors).toBeUndefined();
    expect(accepted.data?.redeemToken).toMatchObject({
      user: { email: 'redeem@example.com', roles: ['editor'] },
      session: { method: 'invite' },
    });
    const again = await portico
      .client()
      .gql(RedeemTokenDocument, { token: ticket.token, profile: { password: 'a long enough passphrase' } });
    expect(codeOf(again)).toBe('INVALID_TOKEN');
    const listed = await admin.gql<{ node: { acceptedAt: string | null } }>(
      'query ($id: ID!) { node(id: $id) { ... on Invite { acceptedAt } } }',
      { id: ticket.invite.id },
    );
    expect(listed.data?.node.acceptedAt).not.toBeNull();
  });

  it('signs up with an invite token in INVITE mode, with the default roles when the invite names none', async () => {
    const ticket = await invite('signup@example.com');
    expect(ticket.invite.roles).toEqual(['member']);
    const result = await portico.client().gql(SignUpDocument, {
      input: {
        email: 'signup@example.com',
        password: 'a long enough passphrase',
        inviteToken: ticket.token,
      },
    });
    expect(result.errors).toBeUndefined();
    expect(result.data?.signUp.user).toMatchObject({ email: 'signup@example.com', roles: ['member'] });
  });

  it('answers sign-up attempts without an invite alike for known and unknown addresses', async () => {
    const input = (email: string) => ({ input: { email, password: 'a long enough passphrase' } });
    // One request id for both: it is the only part of an answer that may differ.
    const sameId = { 'x-request-id': 'sign-up-attempt' };
    const known = await portico.client().gql(SignUpDocument, input('admin@example.com'), sameId);
    const unknown = await portico.client().gql(SignUpDocument, input('unknown@example.com'), sameId);
    expect(codeOf(known)).toBe('SIGNUP_CLOSED');
    expect({ status: unknown.status, errors: unknown.errors, data: unknown.data }).toEqual({
      status: known.status,
      errors: known.errors,
      data: known.data,
    });
  });

  it('binds tokens to their purpose: a bootstrap token is no invite, an invite no bootstrap', async () => {
    const bootstrap = await sessions.api.issueToken(
      portico.gateway.runtime.db.system.em.fork(),
      { purpose: 'bootstrap', ttlSeconds: null },
      new Date(),
    );
    const asInvite = await portico.client().gql(SignUpDocument, {
      input: {
        email: 'purpose@example.com',
        password: 'a long enough passphrase',
        inviteToken: bootstrap.token,
      },
    });
    expect(codeOf(asInvite)).toBe('INVALID_TOKEN');
  });

  it('lets one of 50 concurrent acceptances win, and refuses an expired invite', async () => {
    const ticket = await invite('race@example.com');
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        portico.client().gql(RedeemTokenDocument, {
          token: ticket.token,
          profile: { password: 'a long enough passphrase' },
        }),
      ),
    );
    expect(results.filter((result) => !result.errors)).toHaveLength(1);
    expect(results.filter((result) => codeOf(result) === 'INVALID_TOKEN')).toHaveLength(49);

    const stale = await invite('stale@example.com');
    const em = portico.gateway.runtime.db.system.em.fork();
    const id = fromGlobalId(stale.invite.id, 'Invite');
    await em.nativeUpdate(sessions.api.Token, { id }, { expiresAt: new Date(Date.now() - 1000) });
    const expired = await portico
      .client()
      .gql(RedeemTokenDocument, { token: stale.token, profile: { password: 'a long enough passphrase' } });
    expect(codeOf(expired)).toBe('INVALID_TOKEN');
  });

  it('revokes a pending invite; refuses unknown roles, taken addresses and non-admins', async () => {
    const ticket = await invite('revoked@example.com');
    const revoked = await admin.gql(RevokeInviteDocument, { id: ticket.invite.id });
    expect(revoked.data?.revokeInvite).toBe(true);
    const late = await portico
      .client()
      .gql(RedeemTokenDocument, { token: ticket.token, profile: { password: 'a long enough passphrase' } });
    expect(codeOf(late)).toBe('INVALID_TOKEN');
    const gone = await admin.gql(RevokeInviteDocument, { id: ticket.invite.id });
    expect(codeOf(gone)).toBe('NOT_FOUND');

    expect(codeOf(await admin.gql(CreateInviteDocument, { email: 'x@example.com', roles: ['ghost'] }))).toBe(
      'BAD_USER_INPUT',
    );
    expect(codeOf(await admin.gql(CreateInviteDocument, { email: 'not an email' }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await admin.gql(CreateInviteDocument, { email: 'ADMIN@example.com' }))).toBe('CONFLICT');
    expect(codeOf(await portico.client().gql(CreateInviteDocument, { email: 'x@example.com' }))).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('lists invites newest first, in pages, without revoked ones', async () => {
    const first = await invite('page1@example.com');
    const second = await invite('page2@example.com');
    const page = await admin.gql(InvitesDocument, { first: 1 });
    expect(page.data?.invites.edges.map((edge) => edge.node.id)).toEqual([second.invite.id]);
    expect(page.data?.invites.pageInfo.hasNextPage).toBe(true);
    const next = await admin.gql(InvitesDocument, { first: 1, after: page.data?.invites.pageInfo.endCursor });
    expect(next.data?.invites.edges.map((edge) => edge.node.id)).toEqual([first.invite.id]);
    const member = portico.client();
    const asMember = await member.gql(InvitesDocument);
    expect(codeOf(asMember)).toBe('UNAUTHENTICATED');
  });
});
