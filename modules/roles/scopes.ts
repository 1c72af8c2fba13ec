import type { ModuleInstance, Runtime, Settings } from '../../src/index.ts';
import type { AccessRule } from './access.ts';
import { ADMIN } from './config.ts';
import { rolesFrom } from './service.ts';

/** A scope that some rule gives meaning to, and what holding it lets an API key do. */
export interface ScopeMeaning {
  name: string;
  /** Short and plain, e.g. "read documents of notes". */
  grants: string;
  /** Every signed-in user has this access (rules `authenticated`, `owner`), so any of them may give it to a key. */
  everyone: boolean;
}

declare module '../../src/module.ts' {
  interface ModuleDefinition<Api, Instance extends ModuleInstance> {
    /** The scopes this module's rules give meaning to: what API keys need, and what the console explains. */
    scopes?: (settings: Settings) => ScopeMeaning[];
  }
}

/**
 * The scopes an access rule gives meaning to: under `authenticated` and `owner`, the resource's
 * own scope (which only API keys need); under a list, the listed scopes; none when public.
 */
export function scopesOfRule(rule: AccessRule, resourceScope: string, grants: string): ScopeMeaning[] {
  if (rule === 'public') return [];
  if (rule === 'authenticated') return [{ name: resourceScope, grants, everyone: true }];
  if (rule === 'owner') return [{ name: resourceScope, grants: `${grants} (their own)`, everyone: true }];
  return rule.map((name) => ({ name, grants, everyone: false }));
}

export const ADMIN_MEANING: ScopeMeaning = {
  name: ADMIN,
  grants: 'everything: every rule, users, roles, invites, and managing credentials',
  everyone: false,
};

const catalogues = new WeakMap<object, Map<string, ScopeMeaning>>();

/**
 * Every scope the running gateway gives meaning to, in name order: those of the modules' rules
 * (one scope may serve several) and those named by roles.
 */
export function scopeCatalogue(runtime: Pick<Runtime, 'modules' | 'settings'>): Map<string, ScopeMeaning> {
  let catalogue = catalogues.get(runtime);
  if (catalogue) return catalogue;
  const merged = new Map<string, { grants: Set<string>; everyone: boolean }>();
  const add = (name: string, grants: string, everyone: boolean) => {
    const known = merged.get(name) ?? { grants: new Set<string>(), everyone: false };
    known.grants.add(grants);
    known.everyone ||= everyone;
    merged.set(name, known);
  };
  for (const module of runtime.modules) {
    for (const { name, grants, everyone } of module.scopes?.(runtime.settings) ?? [])
      add(name, grants, everyone);
  }
  for (const role of rolesFrom(runtime.settings).values()) {
    for (const name of role.scopes) {
      if (!merged.has(name)) add(name, `named by role ${role.name}; no rule uses it`, false);
    }
  }
  catalogue = new Map(
    [...merged]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, { grants, everyone }]) => [name, { name, grants: [...grants].join('; '), everyone }]),
  );
  catalogues.set(runtime, catalogue);
  return catalogue;
}

/**
 * Whether a user with these (role) scopes may give `scope` to an API key: one of their roles'
 * scopes, or access every signed-in user has; an admin may give any.
 */
export const mayGrant = (
  runtime: Pick<Runtime, 'modules' | 'settings'>,
  userScopes: ReadonlySet<string>,
  scope: string,
) => userScopes.has(ADMIN) || userScopes.has(scope) || scopeCatalogue(runtime).get(scope)?.everyone === true;
