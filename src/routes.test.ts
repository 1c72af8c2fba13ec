import { describe, expect, it } from 'vitest';
import { type Route, Router } from './routes.ts';

const route = (method: Route['method'], path: string): Route => ({
  method,
  path,
  handler: () => new Response(path),
});

describe('Router', () => {
  const assets = route('GET', '/admin/assets/:file');
  const app = route(['GET', 'HEAD'], '/admin/*');
  const root = route('GET', '/admin');
  const router = new Router([root, assets, app]);

  it('matches fixed paths and parameters, first declared first', () => {
    expect(router.match('GET', '/admin')).toEqual({ route: root, params: {} });
    expect(router.match('GET', '/admin/assets/index-1a2b.js')).toEqual({
      route: assets,
      params: { file: 'index-1a2b.js' },
    });
  });

  it('gives a trailing * one or more segments, never none', () => {
    expect(router.match('GET', '/admin/users')).toEqual({ route: app, params: { '*': 'users' } });
    expect(router.match('HEAD', '/admin/users/42/sessions')).toEqual({
      route: app,
      params: { '*': 'users/42/sessions' },
    });
    expect(new Router([app]).match('GET', '/admin')).toBeNull();
    expect(router.match('GET', '/administrator')).toBeNull();
  });

  it('answers methodNotAllowed for a known path under another method', () => {
    expect(router.match('POST', '/admin/users')).toBe('methodNotAllowed');
  });

  it('names the pattern a path matches, whatever the method', () => {
    expect(router.pattern('/admin/assets/index-1a2b.js')).toBe('/admin/assets/:file');
    expect(router.pattern('/admin/users/42')).toBe('/admin/*');
    expect(router.pattern('/admin')).toBe('/admin');
    expect(router.pattern('/elsewhere')).toBeNull();
  });
});
