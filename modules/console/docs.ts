import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Marked, type Tokens } from 'marked';
import { escapeHtml, html, type Route, renderPage, SafeHtml } from '../../src/index.ts';

/**
 * The manual's page names: `docs/<name>.md`, one lower-case segment. Nothing else is ever read, so
 * no `..`, `/`, `%`, NUL or hidden file can reach the file system.
 */
const PAGE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** The screenshots' names: `docs/screenshots/<name>.png`. */
const SCREENSHOT_NAME = /^[a-z][a-z0-9-]{0,62}\.png$/;

/** GitHub's anchor for a heading (as test/docs-links.test.ts checks the links): lower case, punctuation dropped, spaces as dashes. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

/**
 * Where a link of the manual goes when served here: another page at /docs/<name> (the index at
 * /docs), its anchor kept; a screenshot at /docs/screenshots/<file>; web and mail links as they
 * are. Null for anything else (files beside the manual, such as ../README.md, which are not served).
 */
export function manualHref(href: string): string | null {
  if (href.startsWith('#')) return href;
  if (/^(https?|mailto):/i.test(href)) return href;
  const page = /^([\w-]+)\.md(#[^\s]*)?$/.exec(href);
  if (page) {
    const [, name, anchor = ''] = page;
    if (name === 'README') return `/docs${anchor}`;
    return PAGE_NAME.test(name!) ? `/docs/${name}${anchor}` : null;
  }
  const screenshot = /^screenshots\/(.+)$/.exec(href)?.[1];
  return screenshot && SCREENSHOT_NAME.test(screenshot) ? `/docs/screenshots/${screenshot}` : null;
}

const attribute = (name: string, value: string | null | undefined) =>
  value ? ` ${name}="${escapeHtml(value)}"` : '';

/** One page of the manual as HTML: headings with GitHub's anchors, links made to work under /docs. */
export function renderManualPage(markdown: string): { title: string; body: SafeHtml } {
  let title = 'Manual';
  const anchors = new Map<string, number>();
  const marked = new Marked({
    gfm: true,
    renderer: {
      heading({ tokens, depth, text }: Tokens.Heading) {
        const anchor = anchorOf(text);
        const seen = anchors.get(anchor) ?? 0;
        anchors.set(anchor, seen + 1);
        // The page's name is its first h1, its Markdown marks dropped.
        if (depth === 1 && title === 'Manual') title = text.replace(/[`*_]/g, '');
        const id = seen === 0 ? anchor : `${anchor}-${seen}`;
        return `<h${depth} id="${escapeHtml(id)}">${this.parser.parseInline(tokens)}</h${depth}>\n`;
      },
      link({ href, title: tip, tokens }: Tokens.Link) {
        const text = this.parser.parseInline(tokens);
        const target = manualHref(href);
        return target === null
          ? text
          : `<a href="${escapeHtml(target)}"${attribute('title', tip)}>${text}</a>`;
      },
      image({ href, title: tip, text }: Tokens.Image) {
        const target = manualHref(href);
        // Only this site's images load (the page's CSP): another's shows its text instead.
        return target?.startsWith('/docs/screenshots/')
          ? `<img src="${escapeHtml(target)}" alt="${escapeHtml(text)}"${attribute('title', tip)}>`
          : escapeHtml(text);
      },
      // The manual is our own, yet raw HTML in it shows as text: the pages hold only what Markdown makes.
      html: ({ text }: Tokens.HTML | Tokens.Tag) => escapeHtml(text),
    },
  });
  const body = new SafeHtml(marked.parse(markdown, { async: false }));
  return { title, body };
}

const readOrNull = (path: string) =>
  readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });

const etagOf = (bytes: string | Buffer) => `"${createHash('sha256').update(bytes).digest('base64url')}"`;

/** no-cache: revalidated on every visit (an edited page shows at once), a 304 when nothing changed. */
const CACHING = 'public, no-cache';

const notFound = () =>
  renderPage({
    title: 'Not found',
    body: html`<p>The manual has no such page. <a href="/docs">See its contents</a>.</p>`,
    status: 404,
  });

const notModified = (etag: string) =>
  new Response(null, { status: 304, headers: { etag, 'cache-control': CACHING } });

/**
 * The manual at /docs: `docs/*.md` in `dir` rendered to HTML, read on each request like the
 * console's files (a few small files; an edit shows without a restart).
 */
export function docsRoutes(dir: string): Route[] {
  /**
   * The last rendering of each page with the Markdown it came from: reading a file is cheap,
   * rendering it is not, and anyone may ask for pages. At most one entry per file of the manual.
   */
  const rendered = new Map<string, { markdown: Buffer; text: string; headers: Headers; etag: string }>();

  async function render(name: string, markdown: Buffer) {
    const { title, body } = renderManualPage(markdown.toString('utf8'));
    const nav = html`<nav class="top" aria-label="Manual"><a href="/">Portico</a><a href="/docs">Manual</a><a href="/admin">Console</a></nav>`;
    const response = renderPage({
      title,
      body: html`${nav}<article>${body}</article>`,
      className: 'wide docs',
      heading: false,
      headers: { 'cache-control': CACHING },
    });
    // The page holds no form, so the same file always renders the same bytes.
    const text = await response.text();
    const etag = etagOf(text);
    const headers = new Headers(response.headers);
    headers.set('etag', etag);
    const page = { markdown, text, headers, etag };
    rendered.set(name, page);
    return page;
  }

  /** `name` is README (the index, at /docs) or a name PAGE_NAME allows. */
  async function page(request: Request, name: string) {
    const markdown = await readOrNull(join(dir, `${name}.md`));
    if (!markdown) return notFound();
    const known = rendered.get(name);
    const { text, headers, etag } = known?.markdown.equals(markdown) ? known : await render(name, markdown);
    if (request.headers.get('if-none-match') === etag) return notModified(etag);
    return new Response(request.method === 'HEAD' ? null : text, { status: 200, headers });
  }

  async function screenshot(request: Request, file: string) {
    if (!SCREENSHOT_NAME.test(file)) return notFound();
    const bytes = await readOrNull(join(dir, 'screenshots', file));
    if (!bytes) return notFound();
    const etag = etagOf(bytes);
    if (request.headers.get('if-none-match') === etag) return notModified(etag);
    return new Response(request.method === 'HEAD' ? null : bytes, {
      headers: {
        'content-type': 'image/png',
        'content-length': String(bytes.length),
        'cache-control': CACHING,
        etag,
        'x-content-type-options': 'nosniff',
        'cross-origin-resource-policy': 'same-origin',
      },
    });
  }

  return [
    { method: ['GET', 'HEAD'], path: '/docs', handler: (request) => page(request, 'README') },
    {
      method: ['GET', 'HEAD'],
      path: '/docs/:name',
      handler: (request, _, { name }) => (PAGE_NAME.test(name!) ? page(request, name!) : notFound()),
    },
    {
      method: ['GET', 'HEAD'],
      path: '/docs/screenshots/:file',
      handler: (request, _, { file }) => screenshot(request, file!),
    },
  ];
}
