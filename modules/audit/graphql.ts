import { type Builder, fromGlobalId, paginate, type RequestContext } from '../../src/index.ts';
import users from '../users/index.ts';
import type { AuditEvent } from './entities.ts';
import { AUDIT_KINDS, listEvents } from './service.ts';

export function registerAudit(builder: Builder) {
  const AuditKindEnum = builder.enumType('AuditEventKind', { values: AUDIT_KINDS });
  const userById = (id: string | null | undefined, { db }: RequestContext) =>
    id ? users.api.findUser(db.system, id) : null;

  const AuditEventRef = builder.objectRef<AuditEvent>('AuditEvent').implement({
    description: 'A security-relevant event: logins, revocations, role changes, invites, keys, devices.',
    fields: (t) => ({
      id: t.exposeID('id'),
      kind: t.field({ type: AuditKindEnum, resolve: (event) => event.kind as (typeof AUDIT_KINDS)[number] }),
      at: t.expose('at', { type: 'DateTime' }),
      user: t.field({
        type: users.api.UserRef,
        nullable: true,
        description: 'The user the event is about.',
        resolve: (event, _args, context) => userById(event.userId, context),
      }),
      actor: t.field({
        type: users.api.UserRef,
        nullable: true,
        description: 'Who did it, when not the user themself (an admin).',
        resolve: (event, _args, context) => userById(event.actorId, context),
      }),
      ip: t.string({ nullable: true, resolve: (event) => event.ip ?? null }),
      detail: t.field({ type: 'JSONObject', nullable: true, resolve: (event) => event.detail ?? null }),
    }),
  });
  const AuditEventConnection = builder.connectionObject(
    { type: AuditEventRef, name: 'AuditEventConnection' },
    { name: 'AuditEventEdge' },
  );

  builder.queryField('auditEvents', (t) =>
    t.field({
      type: AuditEventConnection,
      description: 'Admin: the audit log, newest first, optionally about one user or of one kind.',
      authScopes: { admin: true },
      args: {
        first: t.arg.int(),
        after: t.arg.string(),
        userId: t.arg.id(),
        kind: t.arg({ type: AuditKindEnum }),
      },
      resolve: (_root, args, { db }) => {
        const userId = args.userId ? fromGlobalId(String(args.userId), 'User') : undefined;
        return paginate(
          'audit',
          args,
          (page) => listEvents(db.system, { ...page, userId, kind: args.kind ?? undefined }),
          (event) => event.id,
        );
      },
    }),
  );
}
