import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthDocument, CreateInviteDocument, LogInDocument, ViewerDocument } from '../../client/index.ts';
import { ADMIN, backends, startGateway, type TestClient, type TestGateway } from '../../test/harness.ts';

/** GETs a page and returns its HTML and the CSRF token of its forms. */
async function open(client: TestClient, path: string) {
  const response = await client.request(path);
  const text = await response.text();
  return { response, text, csrf: text.match(/name="csrf" value="([\w-]+)"/)?.[1] ?? '' };
}

const post = (
  client: TestClient,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) =>
  client.request(path, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields),
  });

const viewerOf = async (client: TestClient) => (await client.gql(ViewerDocument)).data!.viewer;

describe.each(backends)('pages on %s', (backend) => {
  let portico: TestGateway;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: { roles: { member: ['notes:read'] }, defaultRoles: ['member'] },
    });
  });
  afterAll(() => portico?.close());

  it('shows the bootstrap link without consuming it, then creates the admin from its form', async () => {
    const token = portico.bootstrapToken();
    const browser = portico.client();
    const head = await browser.request(`/auth/redeem?token=${token}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const page = await open(browser, `/auth/redeem?token=${token}`);
    expect(page.response.status).toBe(200);
    expect(page.response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.response.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.text).toContain('Create the first admin');
    expect(page.text).not.toMatch(/<script|src="http|href="http/);
    const needs = await portico.client().gql(AuthDocument);
    expect(needs.data?.auth.needsBootstrap).toBe(true);

    const weak = await post(browser, '/auth/redeem', {
      csrf: page.csrf,
      token,
      email: ADMIN.email,
      name: ADMIN.name,
      password: 'password',
    });
    expect(weak.status).toBe(400);
    const refused = await weak.text();
    expect(refused).toContain('too common');
    // What was typed comes back, the password aside.
    expect(refused).toContain(`value="${ADMIN.email}"`);
    expect(refused).toContain(`value="${ADMIN.name}"`);
    expect(refused).not.toContain('value="password"');

    const created = await post(browser, '/auth/redeem', {
      csrf: page.csrf,
      token,
      email: ADMIN.email,
      name: ADMIN.name,
      password: ADMIN.password,
    });
    expect(created.status).toBe(303);
    // The new admin goes straight on to the console.
    expect(created.headers.get('location')).toBe('/admin');
    expect(await viewerOf(browser)).toMatchObject({
      user: { email: ADMIN.email, roles: ['admin'] },
      session: { method: 'bootstrap' },
    });
    const loginPage = await open(browser, '/login');
    expect(loginPage.text).toContain(`Signed in as <strong>${ADMIN.email}</strong>`);
    expect(loginPage.text).toContain('<a href="/admin">Open the admin console</a>');

    const used = await open(portico.client(), `/auth/redeem?token=${token}`);
    expect(used.response.status).toBe(400);
    expect((await open(portico.client(), '/auth/redeem?token=nonsense')).response.status).toBe(400);
  });

  it('refuses forms without their CSRF token or from another origin', async () => {
    const browser = portico.client();
    const page = await open(browser, '/login');
    expect((await post(browser, '/login', { email: ADMIN.email, password: ADMIN.password })).status).toBe(
      403,
    );
    expect(
      (
        await post(portico.client(), '/login', {
          csrf: page.csrf,
          email: ADMIN.email,
          password: ADMIN.password,
        })
      ).status,
    ).toBe(403);
    const foreign = await post(
      browser,
      '/login',
      { csrf: page.csrf, email: ADMIN.email, password: ADMIN.password },
      { origin: 'http://evil.test' },
    );
    expect(foreign.status).toBe(403);
    expect((await viewerOf(browser)).user).toBeNull();
  });

  it('signs in and out with the password form of /login', async () => {
    const browser = portico.client();
    const page = await open(browser, '/login');
    expect(page.text).toContain('action="/login"');
    expect(page.text).toContain('action="/auth/login-link"');
    expect(page.text).toMatch(/<label>Email <input name="email"/);
    // Each method is named, and an "or" stands between their forms.
    expect(page.text).toMatch(
      /aria-label="Sign in with a password">.*\n<h2>With your password<\/h2>[\s\S]*<\/form><p class="or">or<\/p><form method="post" action="\/auth\/login-link" aria-label="Email me a sign-in link">.*\n<h2>With a link by email<\/h2>/,
    );

    const wrong = await post(browser, '/login', {
      csrf: page.csrf,
      email: ADMIN.email,
      password: 'not it at all',
    });
    expect(wrong.status).toBe(400);
    expect(await wrong.text()).toContain('Invalid email or password.');
    const ok = await post(browser, '/login', {
      csrf: page.csrf,
      email: ADMIN.email,
      password: ADMIN.password,
    });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/admin');
    expect(ok.headers.getSetCookie().filter((cookie) => cookie.startsWith('portico_session='))).toHaveLength(
      1,
    );
    expect((await viewerOf(browser)).session?.method).toBe('password');

    const signedIn = await open(browser, '/login');
    const out = await post(browser, '/auth/logout', { csrf: signedIn.csrf });
    expect(out.status).toBe(303);
    expect((await viewerOf(browser)).user).toBeNull();
  });

  it('accepts an invite through /auth/redeem', async () => {
    const admin = portico.client();
    await admin.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
    const ticket = await admin.gql(CreateInviteDocument, { email: 'colleague@example.com' });
    const path =
      new URL(ticket.data!.createInvite.url).pathname + new URL(ticket.data!.createInvite.url).search;
    const invitee = portico.client();
    const page = await open(invitee, path);
    expect(page.text).toContain('colleague@example.com');
    const token = new URL(ticket.data!.createInvite.url).searchParams.get('token')!;
    const weak = await post(invitee, '/auth/redeem', {
      csrf: page.csrf,
      token,
      name: 'Col <League>',
      password: 'short',
    });
    expect(weak.status).toBe(400);
    const refused = await weak.text();
    expect(refused).toContain('Accept your invite');
    expect(refused).toContain('value="Col &lt;League&gt;"');
    expect(refused).not.toContain('value="short"');
    const accepted = await post(invitee, '/auth/redeem', {
      csrf: page.csrf,
      token,
      name: 'Col',
      password: 'a long enough passphrase',
    });
    expect(accepted.status).toBe(303);
    // Not an admin: the start page, which shows who is signed in.
    expect(accepted.headers.get('location')).toBe('/');
    expect(await viewerOf(invitee)).toMatchObject({
      user: { email: 'colleague@example.com', roles: ['member'] },
      session: { method: 'invite' },
    });
  });

  it('signs in with a magic link requested from /login', async () => {
    const browser = portico.client();
    const page = await open(browser, '/login');
    const sent = await post(browser, '/auth/login-link', { csrf: page.csrf, email: ADMIN.email });
    expect(sent.status).toBe(200);
    expect(await sent.text()).toContain('Check your mail');
    await expect.poll(() => portico.logs.some((line) => line.mail !== undefined)).toBe(true);
    const link = portico.logs
      .findLast((line) => line.mail !== undefined)!
      .msg.match(/\/auth\/redeem\?token=([\w-]{43})/)!;
    const landing = await open(browser, link[0]);
    expect(landing.text).toContain('Continue');
    const redeemed = await post(browser, '/auth/redeem', { csrf: landing.csrf, token: link[1]! });
    expect(redeemed.status).toBe(303);
    expect(redeemed.headers.get('location')).toBe('/admin');
    expect((await viewerOf(browser)).session?.method).toBe('magic-link');
  });
});
