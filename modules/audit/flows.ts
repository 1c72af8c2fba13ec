import type { RequestContext } from '../../src/index.ts';
import { type NewAuditEvent, recordEvent } from './service.ts';

/** Records an event of the request: its IP, and the viewer as the actor when it is someone else. */
export function record(context: RequestContext, event: Omit<NewAuditEvent, 'ip' | 'actorId'>): Promise<void> {
  const actor = context.viewer.userId;
  return recordEvent(context.db.system, {
    ...event,
    ip: context.ip,
    actorId: actor && actor !== event.userId ? actor : null,
  });
}
