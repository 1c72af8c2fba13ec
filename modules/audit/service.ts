import type { EntityManager } from '@mikro-orm/core';
import { newId } from '../../src/index.ts';
import { AuditEvent } from './entities.ts';

/** The kinds of events the gateway records. */
export const AUDIT_KINDS = [
  'BOOTSTRAP',
  'SIGNED_UP',
  'LOGIN_SUCCEEDED',
  'LOGIN_FAILED',
  'LOGOUT',
  'SESSIONS_REVOKED',
  'PASSWORD_CHANGED',
  'ROLES_CHANGED',
  'USER_DISABLED',
  'USER_ENABLED',
  'INVITE_CREATED',
  'INVITE_REVOKED',
  'INVITE_ACCEPTED',
  'API_KEY_CREATED',
  'API_KEY_REVOKED',
  'DEVICE_APPROVED',
  'DEVICE_DENIED',
  'STORE_SWITCHED',
  'STORE_RESET',
  'STORE_RECONNECTED',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

export interface NewAuditEvent {
  kind: AuditKind;
  /** The user the event is about. */
  userId?: string | null;
  /** Who did it, when not the user themself. */
  actorId?: string | null;
  ip?: string | null;
  detail?: Record<string, unknown> | null;
}

export async function recordEvent(em: EntityManager, event: NewAuditEvent): Promise<void> {
  await em.insert(AuditEvent, {
    id: newId(),
    kind: event.kind,
    userId: event.userId ?? null,
    actorId: event.actorId ?? null,
    ip: event.ip?.slice(0, 64) ?? null,
    detail: event.detail ?? null,
    at: new Date(),
  });
}

/** Up to `limit` events, newest first, optionally about one user or of one kind. */
export const listEvents = (
  em: EntityManager,
  { limit, after, userId, kind }: { limit: number; after?: string; userId?: string; kind?: string },
) =>
  em.find(
    AuditEvent,
    { ...(after ? { id: { $lt: after } } : {}), ...(userId ? { userId } : {}), ...(kind ? { kind } : {}) },
    { orderBy: { id: 'desc' }, limit },
  );
