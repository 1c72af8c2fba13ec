import { defineEntity, p } from '@mikro-orm/core';

/** One security-relevant event: who (actor) did what (kind) to whom (user), from where, when. */
const AuditEventSchema = defineEntity({
  name: 'AuditEvent',
  tableName: 'audit_events',
  indexes: [{ properties: ['userId', 'id'] }, { properties: ['kind', 'id'] }],
  properties: {
    id: p.string().primary(),
    kind: p.string().length(64),
    userId: p.string().nullable(),
    actorId: p.string().nullable(),
    ip: p.string().length(64).nullable(),
    detail: p.json<Record<string, unknown>>().nullable(),
    at: p.datetime(),
  },
});
export class AuditEvent extends AuditEventSchema.class {}
AuditEventSchema.setClass(AuditEvent);

export { AuditEventSchema };
