import type { Plugin } from 'graphql-yoga';

/** Portico's mark, the console's icon too (modules/console/app/icon.svg). */
const ICON = Buffer.from(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><title>Portico</title><rect width="32" height="32" rx="7" fill="#2456c8"/><path d="M9 25V7h8a6 6 0 0 1 0 12h-4v6z" fill="#fff"/></svg>',
);

/** Where the server pages' `<link rel="icon">` points. */
export const FAVICON_PATH = '/favicon.svg';

/**
 * The gateway's icon, at the path its pages link and at /favicon.ico, which browsers ask for on
 * their own (an SVG there too: they go by its content type). Without it every page a browser
 * opens logs a 404.
 */
export function useFavicon(): Plugin {
  return {
    onRequest({ request, url, endResponse }) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return;
      if (url.pathname !== FAVICON_PATH && url.pathname !== '/favicon.ico') return;
      endResponse(
        new Response(request.method === 'HEAD' ? null : ICON, {
          headers: {
            'content-type': 'image/svg+xml',
            'content-length': String(ICON.length),
            'cache-control': 'public, max-age=86400',
            'x-content-type-options': 'nosniff',
            // An SVG opened on its own is a document: it may run nothing.
            'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
          },
        }),
      );
    },
  };
}
