import type { Viewer } from '../../src/index.ts';
import { ADMIN } from './config.ts';

declare module '../../src/context.ts' {
  interface AuthScopes {
    /** Any signed-in user or API key. */
    authenticated: boolean;
    /** Scope `admin`. */
    admin: boolean;
    /** Has this scope (admins have every scope). */
    scope: string;
  }
}

export const isAuthenticated = (viewer: Viewer) => viewer.userId !== null;
export const isAdmin = (viewer: Viewer) => viewer.scopes.has(ADMIN);
export const hasScope = (viewer: Viewer, scope: string) => viewer.scopes.has(scope) || isAdmin(viewer);
