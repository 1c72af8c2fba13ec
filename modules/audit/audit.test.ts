import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditEventsDocument,
  type AuditEventsQueryVariables,
  CreateApiKeyDocument,
  CreateInviteDocument,
  LogInDocument,
  LogOutDocument,
  SetUserDisabledDocument,
  SetUserRolesDocument,
  SignUpDocument,
} from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

describe.each(backends)('audit log on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let memberId: string;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: { signup: 'open', roles: { member: ['notes:read'] } } });
    admin = await bootstrapAdmin(portico);
    const member = portico.client();
    const signUp = await member.gql(SignUpDocument, {
      input: { email: 'audited@example.com', password: 'a long enough passphrase' },
    });
    memberId = signUp.data!.signUp.user.id;
    await portico.client().gql(LogInDocument, { email: 'audited@example.com', password: 'not the password' });
    await member.gql(CreateApiKeyDocument, { name: 'laptop', scopes: [] });
    await admin.gql(SetUserRolesDocument, { userId: memberId, roles: ['member'] });
    await admin.gql(SetUserDisabledDocument, { userId: memberId, disabled: true });
    await admin.gql(CreateInviteDocument, { email: 'next@example.com' });
    await admin.gql(LogOutDocument);
    await admin.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
  });
  afterAll(() => portico?.close());

  const events = async (variables: AuditEventsQueryVariables = {}) => {
    const result = await admin.gql(AuditEventsDocument, variables);
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!.auditEvents.edges.map((edge) => edge.node);
  };

  it('records logins, failures, keys, roles, disables, invites and logouts, newest first', async () => {
    const kinds = (await events()).map((event) => event.kind);
    expect(kinds).toEqual([
      'LOGIN_SUCCEEDED',
      'LOGOUT',
      'INVITE_CREATED',
      'USER_DISABLED',
      'ROLES_CHANGED',
      'API_KEY_CREATED',
      'LOGIN_FAILED',
      'SIGNED_UP',
      'BOOTSTRAP',
    ]);
  });

  it('says who acted on whom, from where, with details', async () => {
    const [roles] = await events({ kind: 'ROLES_CHANGED' });
    expect(roles).toMatchObject({
      user: { email: 'audited@example.com' },
      actor: { email: ADMIN.email },
      detail: { from: [], to: ['member'] },
      ip: '127.0.0.1',
    });
    const [failed] = await events({ kind: 'LOGIN_FAILED' });
    expect(failed).toMatchObject({
      user: null,
      detail: { method: 'password', account: 'audited@example.com' },
    });
    expect(JSON.stringify(failed)).not.toContain('not the password');
  });

  it('filters by user and pages', async () => {
    const about = await events({ userId: memberId });
    expect(about.map((event) => event.kind)).toEqual([
      'USER_DISABLED',
      'ROLES_CHANGED',
      'API_KEY_CREATED',
      'SIGNED_UP',
    ]);
    const page = await admin.gql(AuditEventsDocument, { first: 2 });
    expect(page.data?.auditEvents.edges).toHaveLength(2);
    expect(page.data?.auditEvents.pageInfo.hasNextPage).toBe(true);
  });

  it('is for admins only', async () => {
    expect(codeOf(await portico.client().gql(AuditEventsDocument))).toBe('UNAUTHENTICATED');
  });
});
