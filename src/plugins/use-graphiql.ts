import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';
import { GRAPHIQL_ASSETS } from '../routes.ts';

/**
 * The page's policy: scripts, style sheets, workers and requests from this origin only ('self'
 * also covers the same-origin WebSocket). GraphiQL's editor adds <style> elements as it runs,
 * hence inline styles; its fonts and icons are data: URLs inside its style sheet.
 */
export const GRAPHIQL_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': GRAPHIQL_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Revalidated on each use, so that the admin check runs every time; the ETag makes that cheap.
  'cache-control': 'private, no-cache',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Portico GraphiQL</title>
<link rel="icon" href="${GRAPHIQL_ASSETS}favicon.ico">
<link rel="stylesheet" href="${GRAPHIQL_ASSETS}graphiql.css">
<script src="${GRAPHIQL_ASSETS}graphiql.js" defer></script>
</head>
<body id="body" class="no-focus-outline">
<noscript>GraphiQL needs JavaScript.</noscript>
<div id="root"></div>
</body>
</html>
`;

/** The editor's web workers by the label Monaco asks for, served from this origin (not blob: URLs). */
const WORKERS = {
  editorWorkerService: 'editor.worker.js',
  json: 'json.worker.js',
  graphql: 'graphql.worker.js',
};

interface Asset {
  type: string;
  body: Uint8Array<ArrayBuffer>;
  gzipped: Uint8Array<ArrayBuffer>;
  etag: string;
}

let assets: Promise<Map<string, Asset>> | undefined;

/**
 * GraphiQL's files from the installed @graphql-yoga/render-graphiql (which inlines them all in one
 * page); read on first use, since they are 9 MB of strings.
 */
async function loadAssets(): Promise<Map<string, Asset>> {
  const bundle = await import('@graphql-yoga/render-graphiql/graphiql');
  const start = `self.MonacoEnvironment = {
  globalAPI: false,
  getWorkerUrl: (_moduleId, label) => ${JSON.stringify(GRAPHIQL_ASSETS)} + (${JSON.stringify(WORKERS)}[label] ?? ${JSON.stringify(WORKERS.editorWorkerService)}),
};
${bundle.js};
YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), {});
`;
  const script = 'text/javascript; charset=utf-8';
  const files: [string, string, Buffer][] = [
    ['graphiql.js', script, Buffer.from(start)],
    ['graphiql.css', 'text/css; charset=utf-8', Buffer.from(bundle.css)],
    [WORKERS.editorWorkerService, script, Buffer.from(bundle.editorWorkerService)],
    [WORKERS.json, script, Buffer.from(bundle.jsonWorker)],
    [WORKERS.graphql, script, Buffer.from(bundle.graphqlWorker)],
    [
      'favicon.ico',
      'image/x-icon',
      Buffer.from(bundle.favicon.slice(bundle.favicon.indexOf(',') + 1), 'base64'),
    ],
  ];
  const compress = promisify(gzip);
  return new Map(
    await Promise.all(
      files.map(async ([name, type, body]): Promise<[string, Asset]> => {
        const etag = `"${createHash('sha256').update(body).digest('base64url')}"`;
        return [
          name,
          { type, body: new Uint8Array(body), gzipped: new Uint8Array(await compress(body)), etag },
        ];
      }),
    ),
  );
}

/** Whether `Accept-Encoding` takes gzip (and does not refuse it with q=0). */
const acceptsGzip = (header: string | null) =>
  (header ?? '').split(',').some((part) => {
    const [coding, ...params] = part.split(';').map((token) => token.trim().toLowerCase());
    return coding === 'gzip' && !params.some((param) => /^q=0(\.0*)?$/.test(param));
  });

function serveAsset(asset: Asset, request: Request): Response {
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'content-type': asset.type,
    etag: asset.etag,
    vary: 'accept-encoding',
  };
  if (request.headers.get('if-none-match') === asset.etag)
    return new Response(null, { status: 304, headers });
  if (!acceptsGzip(request.headers.get('accept-encoding'))) {
    return new Response(asset.body, { headers });
  }
  return new Response(asset.gzipped, { headers: { ...headers, 'content-encoding': 'gzip' } });
}

const forbiddenPage = () =>
  new Response(
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Forbidden</title><h1>Admins only</h1><p>GraphiQL is open to administrators. <a href="/login">Sign in</a> with an admin account.</p></html>',
    { status: 403, headers: { 'content-type': 'text/html; charset=utf-8' } },
  );

export interface GraphiQLOptions {
  /** Whether the request may use GraphiQL (admins, or anyone in development mode). */
  opensTo(request: Request): Promise<boolean>;
}

/**
 * GraphiQL from the installed package, never a CDN: the page at GET /graphql (for a browser asking
 * for HTML) and its files under /graphiql/, all behind the same gate and under a self-only CSP.
 * Yoga's own GraphiQL loads everything from unpkg, so it stays off.
 */
export function useSelfHostedGraphiQL({ opensTo }: GraphiQLOptions): Plugin {
  return {
    async onRequest({ request, url, endResponse }) {
      if (request.method !== 'GET') return;
      if (url.pathname === '/graphql' && request.headers.get('accept')?.includes('text/html')) {
        if (!(await opensTo(request))) return endResponse(forbiddenPage());
        return endResponse(
          new Response(PAGE, {
            headers: { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' },
          }),
        );
      }
      if (!url.pathname.startsWith(GRAPHIQL_ASSETS)) return;
      const notFound = () =>
        endResponse(new Response('Not found', { status: 404, headers: SECURITY_HEADERS }));
      if (!(await opensTo(request))) return notFound();
      assets ??= loadAssets();
      const asset = (await assets).get(url.pathname.slice(GRAPHIQL_ASSETS.length));
      if (!asset) return notFound();
      endResponse(serveAsset(asset, request));
    },
  };
}
