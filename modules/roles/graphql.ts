import type { Builder } from '../../src/index.ts';
import { managesCredentials } from './access.ts';
import { mayGrant, type ScopeMeaning, scopeCatalogue } from './scopes.ts';
import { type Role, rolesFrom } from './service.ts';

export function registerRoles(builder: Builder) {
  const RoleRef = builder.objectRef<Role>('Role').implement({
    fields: (t) => ({
      name: t.exposeString('name'),
      scopes: t.exposeStringList('scopes'),
    }),
  });

  const ScopeRef = builder.objectRef<ScopeMeaning>('Scope').implement({
    description: 'A scope the configuration gives meaning to.',
    fields: (t) => ({
      name: t.exposeString('name'),
      grants: t.exposeString('grants', {
        description: 'What an API key holding it may do, e.g. "read documents of notes".',
      }),
      grantable: t.boolean({
        description: 'True when the viewer may give it to a new API key.',
        resolve: (scope, _args, { runtime, viewer }) =>
          managesCredentials(viewer) && mayGrant(runtime, viewer.scopes, scope.name),
      }),
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

  builder.queryField('scopes', (t) =>
    t.field({
      description:
        'Every scope the rules and roles give meaning to, in name order, with what it grants an API key.',
      type: [ScopeRef],
      authScopes: { authenticated: true },
      resolve: (_root, _args, { runtime }) => [...scopeCatalogue(runtime).values()],
    }),
  );
}
