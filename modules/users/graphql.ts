import { type Builder, fromGlobalId, paginate, builder as schemaBuilder } from '../../src/index.ts';
import roles from '../roles/index.ts';
import { canSeeUser } from './access.ts';
import { setUserDisabled, setUserRoles } from './flows.ts';
import { listUsers, loadUsers, type UserRecord } from './service.ts';

export const UserRef = schemaBuilder.objectRef<UserRecord>('User');

export function registerUsers(builder: Builder) {
  builder.node(UserRef, {
    id: { resolve: (user) => user.id },
    // `node(id:)` answers null for users the viewer may not see: no existence oracle.
    loadMany: async (ids, { db, viewer }) => {
      const visible = ids.map((id) => (canSeeUser(viewer, id) ? id : ''));
      return loadUsers(db.system, visible);
    },
    authScopes: (user, { viewer }) => canSeeUser(viewer, user.id),
    fields: (t) => ({
      email: t.exposeString('email'),
      name: t.string({ nullable: true, resolve: (user) => user.name ?? null }),
      roles: t.exposeStringList('roles'),
      scopes: t.stringList({
        resolve: (user, _args, { runtime }) => [...roles.api.scopesOf(runtime.settings, user.roles)].sort(),
      }),
      disabled: t.exposeBoolean('disabled'),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      lastLoginAt: t.field({ type: 'DateTime', nullable: true, resolve: (user) => user.lastLoginAt ?? null }),
    }),
  });

  const UserConnection = builder.connectionObject(
    { type: UserRef, name: 'UserConnection' },
    { name: 'UserEdge' },
  );

  builder.queryField('users', (t) =>
    t.field({
      description: 'Admin.',
      type: UserConnection,
      authScopes: { admin: true },
      args: {
        first: t.arg.int(),
        after: t.arg.string(),
        search: t.arg.string(),
      },
      resolve: (_root, args, { db }) =>
        paginate(
          'user',
          args,
          (page) => listUsers(db.system, { ...page, search: args.search }),
          (user) => user.id,
        ),
    }),
  );

  builder.mutationFields((t) => ({
    setUserRoles: t.field({
      type: UserRef,
      description: "Admin. Revokes the user's sessions (reason ROLES_CHANGED).",
      authScopes: { admin: true },
      args: {
        userId: t.arg.id({ required: true }),
        roles: t.arg.stringList({ required: true }),
      },
      resolve: (_root, args, context) =>
        setUserRoles(context, fromGlobalId(String(args.userId), 'User'), args.roles),
    }),
    setUserDisabled: t.field({
      type: UserRef,
      description: "Admin. Disabling revokes the user's sessions and API keys.",
      authScopes: { admin: true },
      args: { userId: t.arg.id({ required: true }), disabled: t.arg.boolean({ required: true }) },
      resolve: (_root, args, context) =>
        setUserDisabled(context, fromGlobalId(String(args.userId), 'User'), args.disabled),
    }),
  }));
}
