import { defineModule } from '../../src/index.ts';
import {
  accessRule,
  allows,
  hasScope,
  isAdmin,
  isAuthenticated,
  isAuthenticatedFor,
  managesCredentials,
  ownerOnly,
} from './access.ts';
import { ADMIN, rolesConfig } from './config.ts';
import { registerRoles } from './graphql.ts';
import { ADMIN_MEANING, mayGrant, scopeCatalogue, scopesOfRule } from './scopes.ts';
import { rolesFrom, scopesOf, unknownRoles } from './service.ts';

export type { AccessRule } from './access.ts';
export type { ScopeMeaning } from './scopes.ts';

/**
 * Roles map to scopes; the scope rules every module uses: authenticated, authenticatedFor,
 * manageCredentials, admin, scope. API keys act only within their scopes.
 */
export default defineModule({
  name: 'roles',
  config: rolesConfig,
  checkConfig(settings) {
    const roles = rolesFrom(settings);
    return settings.defaultRoles.flatMap((name, i) => {
      if (name === ADMIN) return [`defaultRoles.${i}: "admin" cannot be a default role`];
      return roles.has(name) ? [] : [`defaultRoles.${i}: unknown role "${name}" (declare it under "roles")`];
    });
  },
  authScopes: ({ viewer }) => ({
    authenticated: isAuthenticated(viewer),
    authenticatedFor: (scope: string) => isAuthenticatedFor(viewer, scope),
    manageCredentials: managesCredentials(viewer),
    admin: isAdmin(viewer),
    scope: (scope: string) => hasScope(viewer, scope),
  }),
  scopes: () => [ADMIN_MEANING],
  graphql: registerRoles,
  api: {
    ADMIN,
    scopesOf,
    unknownRoles,
    isAdmin,
    hasScope,
    managesCredentials,
    accessRule,
    allows,
    ownerOnly,
    scopesOfRule,
    scopeCatalogue,
    mayGrant,
  },
});
