import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anonymousViewer, type RequestContext, type Route, type Viewer } from '../../src/index.ts';
import { Router } from '../../src/routes.ts';
import { consoleRoutes } from './routes.ts';

const INDEX =
  '<!doctype html><title>Portico admin</title><script type="module" src="/admin/assets/index-Ab1_c.js"></script>';
const SCRIPT = 'console.log("console")';

const viewer = (scopes: string[]): Viewer => ({
  userId: 'u1',
  scopes: new Set(scopes),
  sessionId: 's1',
  apiKeyId: null,
  keyScopes: null,
});
const admin = viewer(['admin']);
const member = viewer(['notes:read']);

/** Serves one request through the console's routes, as the gateway's router would. */
async function serve(routes: Route[], path: string, who: Viewer, init: RequestInit = {}) {
  const request = new Request(`http://portico.test${path}`, init);
  const match = new Router(routes).match(request.method, new URL(request.url).pathname);
  if (!match || match === 'methodNotAllowed') throw new Error(`no console route for ${path}`);
  // The routes read only the viewer of the context.
  return match.route.handler(request, { viewer: who } as RequestContext, match.params);
}

describe('console routes', () => {
  let dir: string;
  let routes: Route[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-console-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), INDEX);
    await writeFile(join(dir, 'assets', 'index-Ab1_c.js'), SCRIPT);
    await writeFile(join(dir, 'assets', 'index-Zz9.css'), 'body{}');
    await writeFile(join(dir, 'assets', 'notes.txt'), 'not an asset type');
    routes = consoleRoutes(dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('sends anonymous visitors to the login page, which brings them back', async () => {
    const response = await serve(routes, '/admin/users/42', anonymousViewer);
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/login?next=/admin/users/42');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect((await serve(routes, '/admin', anonymousViewer)).headers.get('location')).toBe(
      '/login?next=/admin',
    );
  });

  it('refuses signed-in users without the admin role with a 403 page', async () => {
    const response = await serve(routes, '/admin', member);
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('needs the <code>admin</code> role');
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });

  it('serves the app shell to admins on every screen path, revalidated, with strict headers', async () => {
    for (const path of ['/admin', '/admin/users', '/admin/data/notes/0192-a']) {
      const response = await serve(routes, path, admin);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe('private, no-cache');
      expect(await response.text()).toBe(INDEX);
    }
    const response = await serve(routes, '/admin', admin);
    const csp = response.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('x-frame-options')).toBe('DENY');

    const etag = response.headers.get('etag')!;
    const again = await serve(routes, '/admin/users', admin, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    const head = await serve(routes, '/admin', admin, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(INDEX.length));
    expect(await head.text()).toBe('');
  });

  it('serves hashed assets to anyone, typed and cached for a year', async () => {
    const script = await serve(routes, '/admin/assets/index-Ab1_c.js', anonymousViewer);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(script.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await script.text()).toBe(SCRIPT);
    const style = await serve(routes, '/admin/assets/index-Zz9.css', member);
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('answers 404, never the app, for files that are not assets', async () => {
    for (const path of [
      '/admin/assets/missing-1.js',
      '/admin/assets/notes.txt',
      '/admin/assets/..%2Findex.html',
      '/admin/assets/.hidden.js',
      '/admin/assets/nested/index-Ab1_c.js',
    ]) {
      const response = await serve(routes, path, admin);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('says how to build the app when its files are missing', async () => {
    const empty = consoleRoutes(join(dir, 'not-built'));
    const response = await serve(empty, '/admin', admin);
    expect(response.status).toBe(503);
    expect(await response.text()).toContain('npm run build:console');
    // Access is decided first: the page tells nothing to others.
    expect((await serve(empty, '/admin', member)).status).toBe(403);
    expect((await serve(empty, '/admin/assets/index-Ab1_c.js', admin)).status).toBe(404);
  });
});
