import type { Settings } from '../../src/index.ts';
import { ADMIN } from './config.ts';

export interface Role {
  name: string;
  scopes: string[];
}

const cache = new WeakMap<Pick<Settings, 'roles'>, Map<string, Role>>();

/** The configured roles, with `admin` always present and always holding scope `admin`. */
export function rolesFrom(settings: Pick<Settings, 'roles'>): Map<string, Role> {
  let roles = cache.get(settings);
  if (roles) return roles;
  roles = new Map<string, Role>();
  for (const [name, scopes] of Object.entries(settings.roles))
    roles.set(name, { name, scopes: [...new Set(scopes)] });
  const admin = roles.get(ADMIN);
  roles.set(ADMIN, { name: ADMIN, scopes: [...new Set([ADMIN, ...(admin?.scopes ?? [])])] });
  cache.set(settings, roles);
  return roles;
}

/** The union of the roles' scopes. Roles removed from the configuration grant nothing. */
export function scopesOf(settings: Pick<Settings, 'roles'>, names: readonly string[]): Set<string> {
  const roles = rolesFrom(settings);
  const scopes = new Set<string>();
  for (const name of names) for (const scope of roles.get(name)?.scopes ?? []) scopes.add(scope);
  return scopes;
}

/** Names among `names` that are not configured roles. */
export const unknownRoles = (settings: Pick<Settings, 'roles'>, names: readonly string[]) =>
  names.filter((name) => !rolesFrom(settings).has(name));
