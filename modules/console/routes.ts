import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { html, type RequestContext, type Route, redirect, renderPage } from '../../src/index.ts';
import roles from '../roles/index.ts';

/**
 * Headers of every console response that carries the app. The bundle is plain files from
 * this origin (no inline script or style, no CDN), so `'self'` is all it needs; `'self'`
 * also covers the same-origin WebSocket of subscriptions.
 */
const APP_HEADERS = {
  'content-security-policy':
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** Vite's output names: `<name>-<hash>.<ext>`, one path segment, never hidden files. */
const ASSET_NAME = /^[\w-]+\.[a-z0-9]+$/;

const readOrNull = (path: string) =>
  readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });

const notBuilt = () =>
  renderPage({
    title: 'Console not built',
    body: html`<p>The admin console's files are missing from this installation.</p>
<p>Build them with <code>npm run build:console</code> (<code>npm ci</code> does it too), then reload this page.</p>`,
    status: 503,
  });

const notFound = () =>
  new Response('Not found', {
    status: 404,
    headers: { ...APP_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
  });

/**
 * The console's routes, serving the built files in `dir` (index.html and assets/). Files are
 * read on each request: they are few and small, and a rebuild shows without a restart.
 */
export function consoleRoutes(dir: string): Route[] {
  /** The app shell for admins; the login page (303) for anonymous visitors; 403 for other users. */
  async function app(request: Request, context: RequestContext) {
    const { viewer } = context;
    if (!viewer.userId) {
      const path = encodeURIComponent(new URL(request.url).pathname).replaceAll('%2F', '/');
      const response = redirect(`/login?next=${path}`);
      response.headers.set('cache-control', 'no-store');
      return response;
    }
    if (!roles.api.isAdmin(viewer)) {
      return renderPage({
        title: 'Admins only',
        body: html`<p>The admin console needs the <code>admin</code> role, which this account does not have.</p>
<p><a href="/login">Sign in with another account</a>.</p>`,
        status: 403,
      });
    }
    const index = await readOrNull(join(dir, 'index.html'));
    if (!index) return notBuilt();
    const etag = `"${createHash('sha256').update(index).digest('base64url')}"`;
    // no-cache: revalidated on every visit, so a new build is picked up at once.
    const headers = { ...APP_HEADERS, 'cache-control': 'private, no-cache', etag };
    if (request.headers.get('if-none-match') === etag) return new Response(null, { status: 304, headers });
    return new Response(request.method === 'HEAD' ? null : index, {
      headers: {
        ...headers,
        'content-type': 'text/html; charset=utf-8',
        'content-length': String(index.length),
      },
    });
  }

  /**
   * Hashed, immutable files. They are the same for every installation and hold no data, so
   * they are served to anyone, and cached for a year.
   */
  async function asset(request: Request, file: string) {
    const type = CONTENT_TYPES[extname(file)];
    if (!type || !ASSET_NAME.test(file)) return notFound();
    const body = await readOrNull(join(dir, 'assets', file));
    if (!body) return notFound();
    return new Response(request.method === 'HEAD' ? null : body, {
      headers: {
        ...APP_HEADERS,
        'content-type': type,
        'content-length': String(body.length),
        'cache-control': 'public, max-age=31536000, immutable',
      },
    });
  }

  return [
    { method: ['GET', 'HEAD'], path: '/admin', handler: app },
    {
      method: ['GET', 'HEAD'],
      path: '/admin/assets/:file',
      handler: (request, _, { file }) => asset(request, file!),
    },
    {
      method: ['GET', 'HEAD'],
      path: '/admin/*',
      // Deeper paths under assets/ are no files of ours; every other path is a screen of the app.
      handler: (request, context, params) =>
        params['*']!.startsWith('assets/') ? notFound() : app(request, context),
    },
  ];
}
