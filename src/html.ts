import { parseCookie } from 'cookie';
import { FAVICON_PATH } from './plugins/use-favicon.ts';
import { isForeignOrigin } from './routes.ts';
import { randomSecret, sameDigest, sha256 } from './secrets.ts';
import { isStorableText } from './text.ts';

/** Markup that is already safe; `html` interpolates it as is. */
export class SafeHtml {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString() {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => ESCAPES[char]!);

type Interpolation = SafeHtml | string | number | null | undefined | false | readonly Interpolation[];

/** A template tag that escapes every interpolated value except `SafeHtml` (and lists of them). */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  const render = (value: Interpolation): string => {
    if (value === null || value === undefined || value === false) return '';
    if (value instanceof SafeHtml) return value.value;
    if (Array.isArray(value)) return value.map(render).join('');
    return escapeHtml(String(value));
  };
  return new SafeHtml(
    strings.reduce((out, part, i) => out + part + (i < values.length ? render(values[i]!) : ''), ''),
  );
}

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
  body { margin: 0; display: grid; grid-template-columns: minmax(0, 1fr); place-items: center; min-height: 100vh; padding: 1rem; box-sizing: border-box; }
  main { width: min(26rem, 100%); }
  h1 { font-size: 1.4rem; }
  h2 { font-size: 1.1rem; }
  form { display: grid; gap: .75rem; margin: 1rem 0; padding: 1rem; border: 1px solid #8884; border-radius: .5rem; }
  form h2, form p { margin: 0; }
  .account { margin: 1rem 0; }
  form.inline { display: inline-flex; margin: 0 0 0 .5rem; padding: 0; border: 0; vertical-align: middle; }
  form.inline button { padding: .15rem .6rem; }
  label { display: grid; gap: .25rem; font-weight: 600; }
  input { font: inherit; padding: .5rem; border: 1px solid #888; border-radius: .3rem; }
  button { font: inherit; padding: .55rem; border-radius: .3rem; border: 1px solid #2456c8; background: #2456c8; color: #fff; cursor: pointer; }
  button.danger { background: transparent; color: #b3261e; border-color: #b3261e; }
  button:focus-visible, input:focus-visible, a:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
  .actions { display: flex; gap: .75rem; }
  .actions button { flex: 1; }
  .or { display: flex; align-items: center; gap: .75rem; margin: 0; color: #888; }
  .or::before, .or::after { content: ""; flex: 1; border-top: 1px solid #8886; }
  .error { color: #b3261e; font-weight: 600; }
  .note { color: #666; }
  .ok { color: #1e7b34; font-weight: 600; }
  main.wide { width: min(48rem, 100%); }
  a.button { display: inline-block; padding: .55rem 1.25rem; border-radius: .3rem; background: #2456c8; color: #fff; text-decoration: none; font-weight: 600; }
  .ways { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(min(14rem, 100%), 1fr)); gap: .75rem; }
  .ways li { display: grid; gap: .25rem; align-content: start; padding: .75rem 1rem; border: 1px solid #8884; border-radius: .5rem; }
  .ways a { font-weight: 600; font-size: 1.05rem; }
  .ways .what { opacity: .8; }
  nav.top { display: flex; gap: 1rem; flex-wrap: wrap; padding-bottom: .5rem; border-bottom: 1px solid #8884; }
  .docs { place-self: start center; }
  .docs h1 { font-size: 1.8rem; margin-top: 1rem; }
  .docs h2 { font-size: 1.35rem; margin-top: 2rem; padding-bottom: .2rem; border-bottom: 1px solid #8884; }
  .docs h3 { font-size: 1.1rem; margin-top: 1.5rem; }
  .docs code { font-family: ui-monospace, monospace; font-size: .9em; background: #8882; padding: .1em .3em; border-radius: .2rem; overflow-wrap: anywhere; }
  .docs pre { overflow-x: auto; padding: .75rem; background: #8881; border: 1px solid #8884; border-radius: .4rem; }
  .docs pre code { background: none; padding: 0; }
  .docs table { display: block; overflow-x: auto; border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
  .docs th, .docs td { border: 1px solid #8886; padding: .3rem .5rem; vertical-align: top; text-align: left; }
  .docs img { max-width: 100%; height: auto; border: 1px solid #8884; border-radius: .3rem; }
  .docs blockquote { margin: 1rem 0; padding-left: 1rem; border-left: 3px solid #8886; color: #888; }
`;

export interface PageOptions {
  title: string;
  body: SafeHtml;
  status?: number;
  /** Added to the page's; `set-cookie` adds a cookie, any other header replaces the page's own (e.g. `cache-control`). */
  headers?: HeadersInit;
  /** Classes of the page's `main`: `wide` for a longer read, `docs` for the manual's typography. */
  className?: string;
  /** False when the body brings its own `h1` (a page of the manual). */
  heading?: boolean;
}

/**
 * A small server-rendered page: no external assets, no scripts, not cached, never
 * framed, and no referrer (token links must not leak through it).
 */
export function renderPage({
  title,
  body,
  status = 200,
  headers,
  className,
  heading = true,
}: PageOptions): Response {
  const document = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Portico</title>
<link rel="icon" type="image/svg+xml" href="${FAVICON_PATH}">
<style>${new SafeHtml(STYLE)}</style>
</head>
<body><main${className ? html` class="${className}"` : ''}>
${heading ? html`<h1>${title}</h1>` : ''}
${body}
</main></body>
</html>`;
  const response = new Response(document.value, {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      // Images from this site only: the icon, the manual's screenshots.
      'content-security-policy':
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    },
  });
  for (const [name, value] of new Headers(headers)) {
    if (name === 'set-cookie') response.headers.append(name, value);
    else response.headers.set(name, value);
  }
  return response;
}

export const redirect = (location: string, status = 303) =>
  new Response(null, { status, headers: { location } });

// ---------------------------------------------------------------- CSRF for forms

const CSRF_COOKIE = 'portico_csrf';
const CSRF_FIELD = 'csrf';

/**
 * Forms cannot send the CSRF header, so they carry a double-submit token: a random
 * value in a cookie (SameSite=Strict, HttpOnly) and the same value in a hidden field.
 * A foreign site can neither read the cookie nor set it.
 */
export function csrfFor(request: Request): { field: SafeHtml; setCookie: string | null } {
  const existing = readCookie(request, CSRF_COOKIE);
  const value = existing && /^[\w-]{43}$/.test(existing) ? existing : randomSecret();
  const secure = new URL(request.url).protocol === 'https:' ? '; Secure' : '';
  return {
    field: html`<input type="hidden" name="${CSRF_FIELD}" value="${value}">`,
    setCookie:
      existing === value ? null : `${CSRF_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict${secure}`,
  };
}

/** True when the form's token matches the cookie and the Origin, if sent, is this site's. */
export function csrfOk(request: Request, form: URLSearchParams, publicUrl: string): boolean {
  const origin = request.headers.get('origin');
  // An opaque origin passes: browsers send it for some same-site forms, and the token still decides.
  if (origin !== 'null' && isForeignOrigin(origin, new URL(request.url).host, publicUrl)) return false;
  const cookie = readCookie(request, CSRF_COOKIE);
  const field = form.get(CSRF_FIELD);
  return typeof field === 'string' && !!cookie && sameDigest(sha256(cookie), sha256(field));
}

const readCookie = (request: Request, name: string) => parseCookie(request.headers.get('cookie') ?? '')[name];

/** Reads a urlencoded form of at most `maxBytes`, however it is framed; null for anything else. */
export async function readForm(request: Request, maxBytes = 64 * 1024): Promise<URLSearchParams | null> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/x-www-form-urlencoded\b/i.test(type) || !request.body) return null;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes) return null;
    chunks.push(chunk);
  }
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  // U+0000 is no text a database keeps (docs/http.md): such a form is refused like a malformed one.
  for (const [name, value] of form) if (!isStorableText(name) || !isStorableText(value)) return null;
  return form;
}
