import type { RequestContext } from './context.ts';

/** Header names that satisfy CSRF prevention (docs/http.md): a cross-site form cannot set them. */
export const CSRF_HEADERS = ['x-portico-csrf', 'x-graphql-yoga-csrf'];

/** Whether a request carries one of the CSRF headers (any value, as Yoga's CSRF prevention checks). */
export const hasCsrfHeader = (request: Request) => CSRF_HEADERS.some((name) => request.headers.has(name));

/**
 * True when a browser opened the request from another site: it sent an Origin that is neither
 * the public URL's nor that of the Host it asked for. Programs send no Origin; an opaque one
 * ("null") is foreign.
 */
export function isForeignOrigin(
  origin: string | null | undefined,
  host: string | null | undefined,
  publicUrl: string,
): boolean {
  if (!origin) return false;
  if (origin === new URL(publicUrl).origin) return false;
  if (!URL.canParse(origin)) return true;
  return new URL(origin).host !== host;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * A plain HTTP endpoint. `path` segments starting with ':' are parameters, e.g. `/blobs/:id`; a last
 * segment `*` matches one or more further segments, given as the parameter `*` (e.g. `/admin/*`).
 */
export interface Route {
  method: HttpMethod | readonly HttpMethod[];
  path: string;
  handler: (
    request: Request,
    context: RequestContext,
    params: Record<string, string>,
  ) => Promise<Response> | Response;
}

interface CompiledRoute {
  methods: ReadonlySet<string>;
  segments: string[];
  route: Route;
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

/** Matches requests to routes by method and path segments. No regular expressions, no decoding surprises. */
export class Router {
  readonly #routes: CompiledRoute[];

  constructor(routes: readonly Route[]) {
    this.#routes = routes.map((route) => ({
      methods: new Set(typeof route.method === 'string' ? [route.method] : route.method),
      segments: route.path.split('/').filter(Boolean),
      route,
    }));
    const seen = new Set<string>();
    for (const { methods, route } of this.#routes) {
      for (const method of methods) {
        const key = `${method} ${route.path}`;
        if (seen.has(key)) throw new Error(`Route ${key} is declared twice`);
        seen.add(key);
      }
    }
  }

  /** The matching route; `methodNotAllowed` when the path exists under other methods. */
  match(method: string, pathname: string): RouteMatch | 'methodNotAllowed' | null {
    const parts = pathname.split('/').filter(Boolean);
    let pathMatched = false;
    for (const compiled of this.#routes) {
      const params = matchSegments(compiled.segments, parts);
      if (!params) continue;
      if (compiled.methods.has(method)) return { route: compiled.route, params };
      pathMatched = true;
    }
    return pathMatched ? 'methodNotAllowed' : null;
  }

  /** The declared path (`/blobs/:id`) of a route that `pathname` matches under any method; null when none does. */
  pattern(pathname: string): string | null {
    const parts = pathname.split('/').filter(Boolean);
    return this.#routes.find(({ segments }) => matchSegments(segments, parts))?.route.path ?? null;
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | null {
  const rest = pattern.at(-1) === '*';
  const fixed = rest ? pattern.length - 1 : pattern.length;
  if (rest ? parts.length <= fixed : parts.length !== fixed) return null;
  const params: Record<string, string> = {};
  if (rest) params['*'] = parts.slice(fixed).join('/');
  for (let i = 0; i < fixed; i++) {
    const expected = pattern[i]!;
    const actual = parts[i]!;
    if (expected.startsWith(':')) params[expected.slice(1)] = actual;
    else if (expected !== actual) return null;
  }
  return params;
}

/** Where GraphiQL's files are served; the page itself is GET /graphql asking for HTML, as Yoga's was. */
export const GRAPHIQL_ASSETS = '/graphiql/';

/** The paths Yoga and the kernel answer themselves, beside the modules' routes. */
const KERNEL_PATHS = new Set(['/graphql', '/health', '/ready', '/metrics', '/favicon.svg', '/favicon.ico']);

/**
 * What a request's path is called in metrics and span names: a kernel path, GraphiQL's files
 * (`/graphiql/*`), or the pattern of a module route it matches under any method (`/blobs/:id`);
 * null when nothing serves it. Never the path itself, so no id reaches a label or a span's name.
 */
export function routePatterns(routes: readonly Route[]): (pathname: string) => string | null {
  const router = new Router(routes);
  const graphiql = `${GRAPHIQL_ASSETS}*`;
  return (pathname) => {
    if (KERNEL_PATHS.has(pathname)) return pathname;
    if (pathname.startsWith(GRAPHIQL_ASSETS)) return graphiql;
    return router.pattern(pathname);
  };
}

/** The path of a request URL (`http://host/path?query`), without parsing all of it. */
export function pathOf(url: string): string {
  const authority = url.indexOf('//');
  const start = url.indexOf('/', authority === -1 ? 0 : authority + 2);
  if (start === -1) return '/';
  const query = url.indexOf('?', start);
  return query === -1 ? url.slice(start) : url.slice(start, query);
}
