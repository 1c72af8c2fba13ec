import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateInviteDocument, LogInDocument, RedeemTokenDocument } from '../../client/index.ts';
import { ADMIN, backends, bootstrapAdmin, startGateway, type TestGateway } from '../../test/harness.ts';
import { localPath } from './routes.ts';

describe('localPath', () => {
  it('keeps paths of this site and drops everything that would leave it', () => {
    expect(localPath('/admin')).toBe('/admin');
    expect(localPath('/admin/users?q=a#top')).toBe('/admin/users?q=a#top');
    expect(localPath('/a/../admin')).toBe('/admin');
    for (const foreign of [
      null,
      '',
      'admin',
      'https://evil.example/',
      '//evil.example/admin',
      '/\\evil.example',
      '/\t/evil.example',
      'javascript:alert(1)',
    ]) {
      expect(localPath(foreign), String(foreign)).toBeNull();
    }
  });
});

const MEMBER = { email: 'member@example.com', password: 'a member passphrase', name: 'Mem' };

describe.each(backends)('/login with next and reason on %s', (backend) => {
  let portico: TestGateway;
  beforeAll(async () => {
    portico = await startGateway({ backend });
    await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  async function signIn(next: string, account = ADMIN) {
    const browser = portico.client();
    const page = await (
      await browser.request(next ? `/login?next=${encodeURIComponent(next)}` : '/login')
    ).text();
    const csrf = page.match(/name="csrf" value="([\w-]+)"/)?.[1] ?? '';
    const hidden = page.match(/name="next" value="([^"]*)"/)?.[1];
    const response = await browser.request('/login', {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      // A foreign `next` is not in the page: post it anyway, as a forged form would.
      body: new URLSearchParams({
        csrf,
        next: hidden ?? next,
        email: account.email,
        password: account.password,
      }),
    });
    return { hidden, response, browser };
  }

  it('carries next through the form and goes there after signing in', async () => {
    const { hidden, response, browser } = await signIn('/admin');
    expect(hidden).toBe('/admin');
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/admin');
    const signedIn = await (await browser.request('/login?next=/admin')).text();
    expect(signedIn).toContain('<a href="/admin">Continue to /admin</a>');
  });

  it('never redirects to another site', async () => {
    const { hidden, response } = await signIn('//evil.example/admin');
    expect(hidden).toBeUndefined();
    // As without next: an admin goes on to the console.
    expect(response.headers.get('location')).toBe('/admin');
  });

  it('sends a signed-in member to next, or else to the start page, which offers the way on', async () => {
    const admin = portico.client();
    await admin.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
    const ticket = await admin.gql(CreateInviteDocument, { email: MEMBER.email });
    const token = new URL(ticket.data!.createInvite.url).searchParams.get('token')!;
    expect(
      (await portico.client().gql(RedeemTokenDocument, { token, profile: MEMBER })).errors,
    ).toBeUndefined();

    expect((await signIn('/docs', MEMBER)).response.headers.get('location')).toBe('/docs');
    const { hidden, response, browser } = await signIn('', MEMBER);
    expect(hidden).toBeUndefined();
    expect(response.headers.get('location')).toBe('/');
    const signedIn = await (await browser.request('/login')).text();
    expect(signedIn).toContain(`Signed in as <strong>${MEMBER.email}</strong>`);
    expect(signedIn).toContain('<a href="/">Go to the start page</a>');
    expect(signedIn).toContain('action="/auth/logout"');
  });

  it('says why a console was sent back to it', async () => {
    const page = await (await portico.client().request('/login?reason=revoked')).text();
    expect(page).toContain('<p role="status">Your session was revoked. Sign in again to continue.</p>');
    const unknown = await (await portico.client().request('/login?reason=<b>')).text();
    expect(unknown).not.toContain('role="status"');
  });
});
