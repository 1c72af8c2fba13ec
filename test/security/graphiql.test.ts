import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium } from '../browser.ts';
import {
  backends,
  signUpClient,
  startGatewayWithAdmin,
  type TestClient,
  type TestGateway,
} from '../harness.ts';

/**
 * Issue 12, item 12: GraphiQL came from unpkg, so offline it was a blank "Loading…" page and an
 * admin's origin ran third-party script. Now its files come from the installed package, from the
 * gateway's own origin, under a CSP that allows nothing else.
 */

const HTML = { accept: 'text/html' };
/** Hosts that served GraphiQL's files or fonts before, or commonly do. */
const CDN = /unpkg\.com|jsdelivr|esm\.sh|cdnjs|googleapis|gstatic|raw\.githubusercontent/i;

/** `directive -> sources` of a Content-Security-Policy header. */
function policyOf(header: string | null): Map<string, string[]> {
  return new Map(
    (header ?? '')
      .split(';')
      .map((directive) => directive.trim().split(/\s+/))
      .filter(([name]) => name)
      .map(([name, ...sources]) => [name!, sources]),
  );
}

/** The URLs of a page's `src` and `href` attributes. */
const referencesOf = (html: string) =>
  [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((match) => match[1]!);

describe.each(backends)('GraphiQL without a CDN on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let member: TestClient;

  beforeAll(async () => {
    ({ portico, admin } = await startGatewayWithAdmin({ backend, config: { signup: 'open' } }));
    member = await signUpClient(portico, 'member@example.com', 'a long enough passphrase');
  });
  afterAll(() => portico?.close());

  it('serves the page under a CSP that allows only its own origin', async () => {
    const page = await admin.request('/graphql', { headers: HTML });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const policy = policyOf(page.headers.get('content-security-policy'));
    expect(policy.get('default-src')).toEqual(["'self'"]);
    expect(policy.get('script-src')).toEqual(["'self'"]);
    expect(policy.get('connect-src')).toEqual(["'self'"]);
    expect(policy.get('object-src')).toEqual(["'none'"]);
    expect(policy.get('frame-ancestors')).toEqual(["'none'"]);
    // No directive names another origin, nor lets inline or eval'd script run.
    for (const [directive, sources] of policy) {
      for (const source of sources) {
        expect(source, directive).toMatch(/^('self'|'none'|'unsafe-inline'|data:)$/);
        if (source === 'unsafe-inline') expect(directive).toBe('style-src');
      }
    }
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');

    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const references = referencesOf(html);
    expect(references.length).toBeGreaterThanOrEqual(3);
    for (const reference of references) expect(reference).toMatch(/^\/[^/]/);
  });

  it('serves every file the page and its script load from the gateway, with no CDN in them', async () => {
    const html = await (await admin.request('/graphql', { headers: HTML })).text();
    const scripts = [...html.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)].map((match) => match[1]!);
    const styles = [...html.matchAll(/<link rel="stylesheet" href="([^"]+)"/g)].map((match) => match[1]!);
    expect(scripts).toHaveLength(1);
    expect(styles).toHaveLength(1);
    const script = await (await admin.request(scripts[0]!)).text();
    // The editor's workers, which Monaco asks for by label: named in the script's first lines.
    const workers = [
      ...new Set([...script.slice(0, 1000).matchAll(/"([\w.-]+\.worker\.js)"/g)].map((match) => match[1])),
    ].map((name) => `/graphiql/${name}`);
    expect(workers).toHaveLength(3);

    for (const path of [...referencesOf(html), ...workers]) {
      const response = await admin.request(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
      if (path.endsWith('.js'))
        expect(response.headers.get('content-type'), path).toMatch(/^text\/javascript/);
      if (path.endsWith('.css')) expect(response.headers.get('content-type'), path).toMatch(/^text\/css/);
      const body = await response.text();
      expect(body.length, path).toBeGreaterThan(0);
      expect(body, path).not.toMatch(CDN);
      // Style sheets load nothing from elsewhere: every url() is a data: URL or this origin's.
      if (path.endsWith('.css')) {
        expect(body, path).not.toMatch(/@import/);
        for (const [, url] of body.matchAll(/url\(\s*["']?([^"')]*)/g))
          expect(url, path).toMatch(/^(data:|\/[^/]|#)/);
      }
      // Revalidation is cheap.
      const etag = response.headers.get('etag');
      expect(etag, path).toBeTruthy();
      expect((await admin.request(path, { headers: { 'if-none-match': etag! } })).status, path).toBe(304);
    }
  });

  it('compresses the large files for clients that accept gzip', async () => {
    const response = await admin.request('/graphiql/graphiql.js', { headers: { 'accept-encoding': 'gzip' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-encoding')).toBe('gzip');
    // fetch decompresses: the body is the script itself.
    expect(await response.text()).toContain('renderYogaGraphiQL');
  });

  it('keeps the page and its files from anyone but admins', async () => {
    for (const client of [portico.client(), member]) {
      const page = await client.request('/graphql', { headers: HTML });
      expect(page.status).toBe(403);
      expect(await page.text()).toMatch(/\/login/);
      expect((await client.request('/graphiql/graphiql.js')).status).toBe(404);
    }
    expect((await admin.request('/graphiql/%2e%2e%2fportico.sqlite')).status).toBe(404);
    expect((await admin.request('/graphiql/nothing.js')).status).toBe(404);
  });
});

describe.skipIf(!hasChromium())('GraphiQL in Chromium with every other origin blocked', () => {
  // The page and its files do not depend on the database, which only decides the admin gate
  // (checked on every backend above): one backend is enough here.
  let portico: TestGateway;
  let admin: TestClient;
  let browser: Browser;

  beforeAll(async () => {
    ({ portico, admin } = await startGatewayWithAdmin());
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await portico?.close();
  });

  it('renders, loads the schema and runs a query', async () => {
    const context = await browser.newContext();
    try {
      const origin = new URL(portico.url);
      await context.addCookies(
        [...admin.cookies].map(([name, value]) => ({ name, value, url: portico.url, httpOnly: true })),
      );
      const blocked: string[] = [];
      await context.route('**/*', (route) => {
        const url = new URL(route.request().url());
        if (url.origin === origin.origin || url.protocol === 'data:' || url.protocol === 'blob:') {
          return route.continue();
        }
        blocked.push(url.href);
        return route.abort();
      });
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(message.text());
      });
      const workers: string[] = [];
      page.on('worker', (worker) => workers.push(worker.url()));

      const schemaLoaded = page.waitForResponse(
        (response) =>
          new URL(response.url()).pathname === '/graphql' &&
          response.request().method() === 'POST' &&
          (response.request().postData() ?? '').includes('__schema'),
      );
      await page.goto(`${portico.url}/graphql`);
      await page.locator('.graphiql-container').first().waitFor();
      expect((await schemaLoaded).status()).toBe(200);
      expect(await page.locator('#root').innerText()).not.toMatch(/Loading/);

      // Type a query into the editor (which closes the braces itself) and run it.
      const editor = page
        .locator('.graphiql-query-editor [role="code"], .graphiql-query-editor textarea')
        .first();
      await editor.click();
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type('{ viewer { scopes');
      const ran = page.waitForResponse(
        (response) =>
          new URL(response.url()).pathname === '/graphql' &&
          (response.request().postData() ?? '').includes('viewer'),
      );
      // The run button's shortcut: a completion list may cover the button itself.
      await page.keyboard.press('Control+Enter');
      expect(await (await ran).json()).toEqual({ data: { viewer: { scopes: ['admin'] } } });

      expect(blocked).toEqual([]);
      expect(workers.length).toBeGreaterThan(0);
      for (const worker of workers) expect(new URL(worker).origin).toBe(origin.origin);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
