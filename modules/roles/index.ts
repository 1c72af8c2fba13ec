import { defineModule } from '../../src/index.ts';
import { accessRule, allows, hasScope, isAdmin, isAuthenticated, ownerOnly } from './access.ts';
import { ADMIN, rolesConfig } from './config.ts';
import { registerRoles } from './graphql.ts';
import { rolesFrom, scopesOf, unknownRoles } from './service.ts';

export type { AccessRule } from './access.ts';

/** Roles map to scopes; the scope rules every module uses: authenticated, admin, scope. */
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
    admin: isAdmin(viewer),
    scope: (scope: string) => hasScope(viewer, scope),
  }),
  graphql: registerRoles,
  api: { ADMIN, scopesOf, unknownRoles, isAdmin, hasScope, accessRule, allows, ownerOnly },
});
