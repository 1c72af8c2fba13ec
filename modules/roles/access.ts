import { z } from 'zod';
import type { Viewer } from '../../src/index.ts';
import { ADMIN } from './config.ts';

declare module '../../src/context.ts' {
  interface AuthScopes {
    /** Any signed-in user or API key. */
    authenticated: boolean;
    /** Any signed-in user; an API key only while it holds this scope (e.g. `leases`). */
    authenticatedFor: string;
    /** Manages credentials (API keys, sessions, password, devices): a signed-in user, or a key holding `admin`. */
    manageCredentials: boolean;
    /** Scope `admin`. */
    admin: boolean;
    /** Has this scope (admins have every scope). */
    scope: string;
  }
}

export const isAuthenticated = (viewer: Viewer) => viewer.userId !== null;
export const isAdmin = (viewer: Viewer) => viewer.scopes.has(ADMIN);
export const hasScope = (viewer: Viewer, scope: string) => viewer.scopes.has(scope) || isAdmin(viewer);

/** A request through an API key acts only on what the key's scopes name; other credentials act with their user's access. */
export const keyHolds = (viewer: Viewer, scope: string) =>
  viewer.keyScopes === null || viewer.keyScopes.has(scope);

/** Signed in; through an API key, only while the key holds `scope` (admins pass). */
export const isAuthenticatedFor = (viewer: Viewer, scope: string) =>
  isAdmin(viewer) || (isAuthenticated(viewer) && keyHolds(viewer, scope));

/**
 * Creating or revoking API keys, revoking sessions, changing the password, approving devices:
 * a leaked key must not mint keys that outlive it, so a key needs `admin` for any of it.
 */
export const managesCredentials = (viewer: Viewer) =>
  isAuthenticated(viewer) && (viewer.keyScopes === null || isAdmin(viewer));

/**
 * Who may read or write a resource (collections, blobs): anyone, any signed-in user,
 * the owner (per item: see `ownerOnly`), or any of a list of scopes.
 */
export type AccessRule = 'public' | 'authenticated' | 'owner' | string[];

/** The configuration form of an access rule. */
export const accessRule: z.ZodType<AccessRule> = z.union([
  z.enum(['public', 'authenticated', 'owner']),
  z.array(z.string().min(1)).min(1, 'expected at least one scope'),
]);

/**
 * Whether the viewer passes a rule at all (admins pass every rule); `owner` then limits items.
 * `resourceScope` (e.g. `notes:read`) is what an API key needs besides under `authenticated`
 * and `owner`; a list of scopes is checked against the key's scopes already.
 */
export function allows(viewer: Viewer, rule: AccessRule, resourceScope: string): boolean {
  if (isAdmin(viewer)) return true;
  if (rule === 'public') return true;
  if (rule === 'authenticated' || rule === 'owner') return isAuthenticatedFor(viewer, resourceScope);
  return rule.some((scope) => hasScope(viewer, scope));
}

/** The owner the viewer is limited to under a rule: their own id in `owner` mode, null (no limit) otherwise and for admins. */
export const ownerOnly = (viewer: Viewer, rule: AccessRule) =>
  rule === 'owner' && !isAdmin(viewer) ? viewer.userId : null;
