import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ApiKeysDocument,
  ApproveDeviceDocument,
  CreateApiKeyDocument,
  CreateInviteDocument,
  DenyDeviceDocument,
  RedeemTokenDocument,
  RevokeApiKeyDocument,
  ViewerDocument,
} from '../../client/index.ts';
import {
  backends,
  codeOf,
  startGatewayWithAdmin,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

describe.each(backends)('device authorization grant on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    ({ portico, admin } = await startGatewayWithAdmin({
      backend,
      config: { roles: { member: ['notes:read'] }, device: { intervalSeconds: 1 } },
    }));
  });
  afterAll(() => portico?.close());

  const form = (path: string, fields: Record<string, string>) =>
    fetch(new URL(path, portico.url), { method: 'POST', body: new URLSearchParams(fields) });
  const authorize = async (clientId: string, scope?: string) => {
    const response = await form('/oauth/device_authorization', {
      client_id: clientId,
      ...(scope ? { scope } : {}),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { device_code: string; user_code: string; interval: number };
  };
  const tokenFor = (deviceCode: string, clientId: string) =>
    form('/oauth/token', { grant_type: GRANT, device_code: deviceCode, client_id: clientId });

  it('completes with openid-client, unmodified, and the key works and is revocable', async () => {
    const config = await oidc.discovery(new URL(portico.url), 'portico-cli', undefined, oidc.None(), {
      algorithm: 'oauth2',
      execute: [oidc.allowInsecureRequests],
    });
    const started = await oidc.initiateDeviceAuthorization(config, { scope: 'admin notes:read other' });
    expect(started.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(started.verification_uri).toBe(`${portico.url}/device`);
    const polling = oidc.pollDeviceAuthorizationGrant(config, started);
    // The person approves in the browser (the code typed in lower case, without the dash).
    const approved = await admin.gql(ApproveDeviceDocument, {
      userCode: started.user_code.replace('-', '').toLowerCase(),
    });
    expect(approved.data?.approveDevice).toBe(true);
    const tokens = await polling;
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    // Admins have every scope, so they grant whatever is asked.
    expect(tokens.scope).toBe('admin notes:read other');

    const bearer = { authorization: `Bearer ${tokens.access_token}` };
    const viewer = await portico.client().gql(ViewerDocument, undefined, bearer);
    expect(viewer.data?.viewer.user?.email).toBe('admin@example.com');
    const keyView = await portico.client().gql(ApiKeysDocument, undefined, bearer);
    expect(keyView.data?.viewer.apiKey?.name).toBe('portico-cli');
    const keys = await admin.gql(ApiKeysDocument);
    expect(keys.data?.viewer.apiKeys.map((key) => key.name)).toContain('portico-cli');
    await admin.gql(RevokeApiKeyDocument, { id: keyView.data!.viewer.apiKey!.id });
    const revoked = await portico.client().gql(ViewerDocument, undefined, bearer);
    expect(revoked.data?.viewer.user).toBeNull();
  });

  it('answers authorization_pending, slow_down (+5 s), then works once', async () => {
    const started = await authorize('poller');
    expect(await (await tokenFor(started.device_code, 'poller')).json()).toEqual({
      error: 'authorization_pending',
    });
    const tooFast = await tokenFor(started.device_code, 'poller');
    expect(tooFast.status).toBe(400);
    expect(await tooFast.json()).toEqual({ error: 'slow_down' });
    await admin.gql(ApproveDeviceDocument, { userCode: started.user_code });
    const granted = await tokenFor(started.device_code, 'poller');
    expect(granted.status).toBe(200);
    expect(granted.headers.get('cache-control')).toBe('no-store');
    expect(await (await tokenFor(started.device_code, 'poller')).json()).toEqual({ error: 'invalid_grant' });
    expect(await (await tokenFor('x'.repeat(43), 'poller')).json()).toEqual({ error: 'invalid_grant' });
  });

  it('answers access_denied after a denial, and refuses foreign clients and bad requests', async () => {
    const started = await authorize('denied-cli');
    expect(await (await tokenFor(started.device_code, 'someone-else')).json()).toEqual({
      error: 'invalid_grant',
    });
    await admin.gql(DenyDeviceDocument, { userCode: started.user_code });
    expect(await (await tokenFor(started.device_code, 'denied-cli')).json()).toEqual({
      error: 'access_denied',
    });
    expect((await form('/oauth/device_authorization', {})).status).toBe(400);
    expect(await (await form('/oauth/token', { grant_type: 'password' })).json()).toEqual({
      error: 'unsupported_grant_type',
    });
  });

  it('needs a browser session to approve, and limits wrong codes', async () => {
    const started = await authorize('guarded');
    const key = await admin.gql(CreateApiKeyDocument, { name: 'k', scopes: [] });
    const withKey = await portico
      .client()
      .gql(
        ApproveDeviceDocument,
        { userCode: started.user_code },
        { authorization: `Bearer ${key.data!.createApiKey.secret}` },
      );
    expect(codeOf(withKey)).toBe('FORBIDDEN');

    const guesser = portico.client();
    const member = await admin.gql(CreateInviteDocument, { email: 'guess@example.com' });
    await guesser.gql(RedeemTokenDocument, {
      token: member.data!.createInvite.token,
      profile: { password: 'a long enough passphrase' },
    });
    for (let i = 0; i < 5; i++) {
      const wrong = await guesser.gql(ApproveDeviceDocument, { userCode: 'BBBB-BBBB' });
      expect(codeOf(wrong)).toBe('INVALID_TOKEN');
    }
    const limited = await guesser.gql(ApproveDeviceDocument, { userCode: started.user_code });
    expect(codeOf(limited)).toBe('RATE_LIMITED');
  });

  it('grants only the asked scopes the approving user has', async () => {
    const invite = await admin.gql(CreateInviteDocument, { email: 'narrow@example.com', roles: ['member'] });
    const member = portico.client();
    await member.gql(RedeemTokenDocument, {
      token: invite.data!.createInvite.token,
      profile: { password: 'a long enough passphrase' },
    });
    const started = await authorize('narrow-cli', 'admin notes:read');
    await member.gql(ApproveDeviceDocument, { userCode: started.user_code });
    expect(await (await tokenFor(started.device_code, 'narrow-cli')).json()).toMatchObject({
      scope: 'notes:read',
    });
  });

  it('lets a signed-in person confirm the code on /device', async () => {
    const started = await authorize('page-cli', 'notes:read');
    const anonymous = await fetch(new URL(`/device?user_code=${started.user_code}`, portico.url));
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toContain(
      `<a href="/login?next=%2Fdevice%3Fuser_code%3D${started.user_code}">Sign in</a>`,
    );
    const confirm = await admin.request(`/device?user_code=${started.user_code}`);
    const text = await confirm.text();
    expect(confirm.status).toBe(200);
    expect(text).toContain('page-cli');
    // Approve is the page's primary button; Deny is styled apart (the danger class), not its twin.
    expect(text).toContain('<button type="submit" name="decision" value="approve">Approve</button>');
    expect(text).toContain('<button type="submit" name="decision" value="deny" class="danger">Deny</button>');
    expect(text).toContain('button.danger {');
    const csrf = text.match(/name="csrf" value="([\w-]+)"/)![1]!;
    const decided = await admin.request('/device', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, user_code: started.user_code, decision: 'approve' }),
    });
    expect(decided.status).toBe(200);
    expect(await decided.text()).toContain('Device connected');
    const granted = await tokenFor(started.device_code, 'page-cli');
    expect(await granted.json()).toMatchObject({ token_type: 'Bearer', scope: 'notes:read' });
  });
});
