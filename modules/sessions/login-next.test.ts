import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe.each(backends)('/login with next and reason on %s', (backend) => {
  let portico: TestGateway;
  beforeAll(async () => {
    portico = await startGateway({ backend });
    await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  async function signIn(next: string) {
    const browser = portico.client();
    const page = await (await browser.request(`/login?next=${encodeURIComponent(next)}`)).text();
    const csrf = page.match(/name="csrf" value="([\w-]+)"/)?.[1] ?? '';
    const hidden = page.match(/name="next" value="([^"]*)"/)?.[1];
    const response = await browser.request('/login', {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      // A foreign `next` is not in the page: post it anyway, as a forged form would.
      body: new URLSearchParams({ csrf, next: hidden ?? next, email: ADMIN.email, password: ADMIN.password }),
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
    expect(response.headers.get('location')).toBe('/login');
  });

  it('says why a console was sent back to it', async () => {
    const page = await (await portico.client().request('/login?reason=revoked')).text();
    expect(page).toContain('<p role="status">Your session was revoked. Sign in again to continue.</p>');
    const unknown = await (await portico.client().request('/login?reason=<b>')).text();
    expect(unknown).not.toContain('role="status"');
  });
});
