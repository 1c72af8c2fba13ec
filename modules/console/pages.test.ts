import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateInviteDocument, LogInDocument, RedeemTokenDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  startGatewayWithAdmin,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { manualHref, renderManualPage } from './docs.ts';

const MEMBER = { email: 'member@example.com', password: 'a member passphrase', name: 'Mem' };

/** A GET whose path goes out byte for byte: fetch would resolve `%2e%2e` and `..` before sending. */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ hostname, port, path }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode!, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('the manual as HTML', () => {
  it('makes links between pages, anchors and screenshots work under /docs, and drops the rest', () => {
    expect(manualHref('identity.md')).toBe('/docs/identity');
    expect(manualHref('identity.md#first-admin')).toBe('/docs/identity#first-admin');
    expect(manualHref('README.md')).toBe('/docs');
    expect(manualHref('#the-part')).toBe('#the-part');
    expect(manualHref('screenshots/users.png')).toBe('/docs/screenshots/users.png');
    expect(manualHref('https://example.com/x')).toBe('https://example.com/x');
    for (const outside of [
      '../README.md',
      'grafana-dashboard.json',
      '../x/a.md',
      'javascript:alert(1)',
      'A.md',
    ]) {
      expect(manualHref(outside), outside).toBeNull();
    }
  });

  it('renders headings with their anchors, links, and raw HTML as text', () => {
    const { title, body } = renderManualPage(
      '# The title\n\n## The `part`\n\n## The `part`\n\nSee [it](blobs.md#storage), [out](../BENCHMARKS.md) ' +
        'and ![shot](screenshots/users.png).\n\n<script>alert(1)</script>\n',
    );
    expect(title).toBe('The title');
    expect(body.value).toContain('<h1 id="the-title">The title</h1>');
    expect(body.value).toContain('<h2 id="the-part">The <code>part</code></h2>');
    expect(body.value).toContain('<h2 id="the-part-1">');
    expect(body.value).toContain('<a href="/docs/blobs#storage">it</a>, out and ');
    expect(body.value).toContain('<img src="/docs/screenshots/users.png" alt="shot">');
    expect(body.value).toContain('&lt;script&gt;');
    expect(body.value).not.toContain('<script');
  });
});

describe.each(backends)('the start page and the manual on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let member: TestClient;

  beforeAll(async () => {
    ({ portico, admin } = await startGatewayWithAdmin({ backend }));
    const ticket = await admin.gql(CreateInviteDocument, { email: MEMBER.email });
    const token = new URL(ticket.data!.createInvite.url).searchParams.get('token')!;
    member = portico.client();
    expect((await member.gql(RedeemTokenDocument, { token, profile: MEMBER })).errors).toBeUndefined();
  });
  afterAll(() => portico?.close());

  it('tells anonymous visitors what this is, where to go, and how to sign in', async () => {
    const response = await portico.client().request('/');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(response.headers.get('cache-control')).toBe('no-store');
    const text = await response.text();
    expect(text).toContain('A self-hosted GraphQL gateway');
    for (const link of ['/admin', '/graphql', '/docs', '/health', '/ready', '/login']) {
      expect(text).toMatch(new RegExp(`<a (class="button" )?href="${link}">`));
    }
    // The same probe as /ready, whose answer it puts in words.
    expect(text).toContain('<span class="ok">Ready now</span>: both databases answer.');
    expect(text).not.toContain('Signed in as');
    expect(text).not.toMatch(/<script|src="http/);
    const head = await portico.client().request('/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('shows a signed-in member who they are and the way out; sends an admin to the console', async () => {
    const text = await (await member.request('/')).text();
    expect(text).toContain(`Signed in as <strong>${MEMBER.email}</strong>`);
    expect(text).toContain('<form class="inline" method="post" action="/auth/logout" aria-label="Sign out">');
    expect(text).not.toContain('<a href="/login">');

    const sent = await admin.request('/', { redirect: 'manual' });
    expect(sent.status).toBe(303);
    expect(sent.headers.get('location')).toBe('/admin');
    const signedIn = portico.client();
    await signedIn.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
    expect((await signedIn.request('/', { method: 'HEAD', redirect: 'manual' })).status).toBe(303);
  });

  it('serves the manual: its index, its pages with links rewritten, its screenshots', async () => {
    const index = await portico.client().request('/docs');
    expect(index.status).toBe(200);
    expect(index.headers.get('content-security-policy')).toContain("img-src 'self'");
    expect(index.headers.get('content-security-policy')).not.toContain('script-src');
    const text = await index.text();
    expect(text).toContain('<title>Portico documentation · Portico</title>');
    expect(text).toContain('<main class="wide docs">');
    expect(text).toContain('<a href="/docs/configuration">Configuration</a>');

    const page = await portico.client().request('/docs/console');
    expect(page.status).toBe(200);
    const console = await page.text();
    expect(console).toMatch(/<h1 id="[\w-]+">/);
    expect(console).toMatch(/<img src="\/docs\/screenshots\/[\w-]+\.png"/);
    expect(console).toContain('<a href="/docs/http#admin-console">');

    const etag = page.headers.get('etag')!;
    expect(page.headers.get('cache-control')).toBe('public, no-cache');
    const again = await portico.client().request('/docs/console', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);

    const image = await portico.client().request('/docs/screenshots/users.png');
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toBe('image/png');
    expect(
      Buffer.from(await image.arrayBuffer())
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
    expect((await portico.client().request('/docs/screenshots/users.png', { method: 'HEAD' })).status).toBe(
      200,
    );
  });

  it('answers 404 for anything but a page or screenshot of the manual', async () => {
    for (const path of [
      '/docs/nothing-here',
      '/docs/README',
      '/docs/Console',
      '/docs/console.md',
      '/docs/..',
      '/docs/%2e%2e',
      '/docs/..%2fpackage',
      '/docs/%2e%2e%2fREADME',
      '/docs/%2e%2e%2f%2e%2e%2fpackage.json',
      '/docs/screenshots/..%2f..%2fpackage.json',
      '/docs/screenshots/%2e%2e/%2e%2e/package.json',
      '/docs/screenshots/users',
      '/docs/screenshots/.users.png',
      '/docs/console%00',
      '/docs/%00',
      '/docs/screenshots/users.png%00.md',
      `/docs/${'a'.repeat(64)}`,
      `/docs/${'a'.repeat(5000)}`,
      '/docs/development/x',
    ]) {
      const { status, body } = await rawGet(portico.url, path);
      // `..` segments resolve before routing (/docs/.. is /, the start page); none reaches a file.
      if (path === '/docs/..' || path === '/docs/%2e%2e') {
        expect(body, path).toContain('A self-hosted GraphQL gateway');
        continue;
      }
      expect(status, path).toBe(404);
      expect(body, path).not.toMatch(/"name": "portico"|# Portico documentation/);
    }
  });
});
