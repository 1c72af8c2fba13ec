import { defineModule } from '../../src/index.ts';
import users from '../users/index.ts';
import { AuditEventSchema } from './entities.ts';
import { record } from './flows.ts';
import { registerAudit } from './graphql.ts';
import type { AuditKind } from './service.ts';

export type { AuditKind };

/** The audit log in the system database, and the admin `auditEvents` query. */
export default defineModule({
  name: 'audit',
  dependsOn: ['users'],
  entities: { system: [AuditEventSchema] },
  graphql: registerAudit,
  // What an admin does to a user is recorded within the admin's request.
  contributes: [
    users.api.userLifecycle.with({
      rolesChanged: (context, { userId, from, to }) =>
        record(context, { kind: 'ROLES_CHANGED', userId, detail: { from, to } }),
      disabled: (context, userId) => record(context, { kind: 'USER_DISABLED', userId }),
      enabled: (context, userId) => record(context, { kind: 'USER_ENABLED', userId }),
    }),
  ],
  api: { record },
});
