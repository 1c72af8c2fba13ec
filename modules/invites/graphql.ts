import {
  type Builder,
  fromGlobalId,
  PorticoError,
  paginate,
  type RequestContext,
  builder as schemaBuilder,
} from '../../src/index.ts';
import audit from '../audit/index.ts';
import roles from '../roles/index.ts';
import users from '../users/index.ts';
import {
  createInvite,
  findInvite,
  type InviteRecord,
  listInvites,
  loadInvites,
  revokeInvite,
} from './service.ts';

export const InviteRef = schemaBuilder.objectRef<InviteRecord>('Invite');

async function invite(
  context: RequestContext,
  email: string,
  roleNames: readonly string[] | null | undefined,
) {
  const { runtime, db, viewer } = context;
  const address = users.api.normalizeEmail(email);
  const unknown = roles.api.unknownRoles(runtime.settings, roleNames ?? []);
  if (unknown.length > 0) {
    throw new PorticoError('BAD_USER_INPUT', `Unknown roles: ${unknown.join(', ')}.`, { field: 'roles' });
  }
  if (await users.api.findUserByEmail(db.system, address.email)) {
    throw new PorticoError('CONFLICT', 'An account with this email already exists.', { field: 'email' });
  }
  const { token, invite } = await createInvite(
    db.system,
    { email: address.email, roles: roleNames ?? null, invitedBy: viewer.userId! },
    new Date(runtime.clock.now()),
  );
  await audit.api.record(context, {
    kind: 'INVITE_CREATED',
    detail: { email: invite.email, roles: invite.roles },
  });
  return { invite, token, url: `${runtime.env.publicUrl}/auth/redeem?token=${token}` };
}

export function registerInvites(builder: Builder) {
  builder.node(InviteRef, {
    id: { resolve: (invite) => invite.id },
    loadMany: (ids, { db, viewer }) =>
      roles.api.isAdmin(viewer) ? loadInvites(db.system, ids) : ids.map(() => null),
    authScopes: { admin: true },
    fields: (t) => ({
      email: t.exposeString('email'),
      roles: t.stringList({
        description: 'The roles the invitee gets; the default roles when the invite names none.',
        resolve: (invite, _args, { runtime }) =>
          invite.roles.length > 0 ? invite.roles : runtime.settings.defaultRoles,
      }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
      invitedBy: t.field({
        type: users.api.UserRef,
        nullable: true,
        resolve: (invite, _args, { db }) =>
          invite.invitedBy ? users.api.findUser(db.system, invite.invitedBy) : null,
      }),
      acceptedAt: t.field({ type: 'DateTime', nullable: true, resolve: (invite) => invite.acceptedAt }),
    }),
  });

  const InviteConnection = builder.connectionObject(
    { type: InviteRef, name: 'InviteConnection' },
    { name: 'InviteEdge' },
  );
  const InviteTicketRef = builder
    .objectRef<{ invite: InviteRecord; token: string; url: string }>('InviteTicket')
    .implement({
      fields: (t) => ({
        invite: t.field({ type: InviteRef, resolve: (ticket) => ticket.invite }),
        token: t.exposeString('token', { description: 'The single-use token, shown once.' }),
        url: t.exposeString('url', {
          description: 'An absolute link to redeem it, built from the configured public URL.',
        }),
      }),
    });

  builder.queryField('invites', (t) =>
    t.field({
      type: InviteConnection,
      description: 'Admin.',
      authScopes: { admin: true },
      args: { first: t.arg.int(), after: t.arg.string() },
      resolve: (_root, args, { db }) =>
        paginate(
          'invite',
          args,
          (page) => listInvites(db.system, page),
          (invite) => invite.id,
        ),
    }),
  );

  builder.mutationFields((t) => ({
    createInvite: t.field({
      type: InviteTicketRef,
      description: 'Admin.',
      authScopes: { admin: true },
      args: { email: t.arg.string({ required: true }), roles: t.arg.stringList() },
      resolve: (_root, args, context) => invite(context, args.email, args.roles),
    }),
    revokeInvite: t.boolean({
      description: 'Admin.',
      authScopes: { admin: true },
      args: { id: t.arg.id({ required: true }) },
      resolve: async (_root, { id }, context) => {
        const row = await findInvite(context.db.system, fromGlobalId(String(id), 'Invite'));
        if (!row) throw new PorticoError('NOT_FOUND', 'No such invite.');
        const revoked = await revokeInvite(context.db.system, row.id);
        if (revoked)
          await audit.api.record(context, { kind: 'INVITE_REVOKED', detail: { email: row.email } });
        return revoked;
      },
    }),
  }));
}
