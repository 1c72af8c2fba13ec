import { defineModule, type RequestContext } from '../../src/index.ts';
import users from '../users/index.ts';
import { AuditEventSchema } from './entities.ts';
import { registerAudit } from './graphql.ts';
import { type AuditKind, type NewAuditEvent, recordEvent } from './service.ts';

export type { AuditKind };

/** Records an event of the request: its IP, and the viewer as the actor when it is someone else. */
function record(context: RequestContext, event: Omit<NewAuditEvent, 'ip' | 'actorId'>): Promise<void> {
  const actor = context.viewer.userId;
  return recordEvent(context.db.system, {
    ...event,
    ip: context.ip,
    actorId: actor && actor !== event.userId ? actor : null,
  });
}

/** The audit log in the system database, and the admin `auditEvents` query. */
export default defineModule({
  name: 'audit',
  dependsOn: ['users'],
  entities: { system: [AuditEventSchema] },
  graphql: registerAudit,
  setup: () => ({
    contributes: [
      users.api.userLifecycle.with({
        rolesChanged: (context, { userId, from, to }) =>
          record(context, { kind: 'ROLES_CHANGED', userId, detail: { from, to } }),
        disabled: (context, userId) => record(context, { kind: 'USER_DISABLED', userId }),
        enabled: (context, userId) => record(context, { kind: 'USER_ENABLED', userId }),
      }),
    ],
  }),
  api: { record },
});
