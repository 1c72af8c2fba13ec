import type { Builder } from '../../src/index.ts';
import { type Role, rolesFrom } from './service.ts';

export function registerRoles(builder: Builder) {
  const RoleRef = builder.objectRef<Role>('Role').implement({
    fields: (t) => ({
      name: t.exposeString('name'),
      scopes: t.exposeStringList('scopes'),
    }),
  });

  builder.queryField('roles', (t) =>
    t.field({
      description: 'Admin.',
      type: [RoleRef],
      authScopes: { admin: true },
      resolve: (_root, _args, { runtime }) =>
        [...rolesFrom(runtime.settings).values()].sort((a, b) => a.name.localeCompare(b.name)),
    }),
  );
}
