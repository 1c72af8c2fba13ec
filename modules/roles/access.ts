import { z } from 'zod';
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

/** Whether the viewer passes a rule at all (admins pass every rule); `owner` then limits items. */
export function allows(viewer: Viewer, rule: AccessRule): boolean {
  if (isAdmin(viewer)) return true;
  if (rule === 'public') return true;
  if (rule === 'authenticated' || rule === 'owner') return viewer.userId !== null;
  return rule.some((scope) => hasScope(viewer, scope));
}

/** The owner the viewer is limited to under a rule: their own id in `owner` mode, null (no limit) otherwise and for admins. */
export const ownerOnly = (viewer: Viewer, rule: AccessRule) =>
  rule === 'owner' && !isAdmin(viewer) ? viewer.userId : null;
