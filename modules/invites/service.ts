import type { EntityManager } from '@mikro-orm/core';
import sessions from '../sessions/index.ts';

export const INVITE_PURPOSE = 'invite';
export const INVITE_TTL_SECONDS = 7 * 24 * 3600;

const { Token } = sessions.api;
type TokenRow = InstanceType<typeof Token>;

/** What the GraphQL `Invite` type reads: an invite token's row. */
export interface InviteRecord {
  readonly id: string;
  readonly email: string;
  readonly roles: string[];
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly invitedBy: string | null;
  readonly acceptedAt: Date | null;
}

export function inviteRecord(row: TokenRow): InviteRecord {
  const data = (row.data ?? {}) as { roles?: string[]; invitedBy?: string };
  return {
    id: row.id,
    email: row.email ?? '',
    roles: data.roles ?? [],
    createdAt: row.createdAt,
    expiresAt: row.expiresAt ?? row.createdAt,
    invitedBy: data.invitedBy ?? null,
    acceptedAt: row.usedAt ?? null,
  };
}

export interface NewInvite {
  email: string;
  roles: readonly string[] | null;
  invitedBy: string;
}

/** Issues an invite: a 7-day single-use token bound to the address and the roles. */
export async function createInvite(em: EntityManager, input: NewInvite, now: Date) {
  const { token, row } = await sessions.api.issueToken(
    em,
    {
      purpose: INVITE_PURPOSE,
      ttlSeconds: INVITE_TTL_SECONDS,
      email: input.email,
      data: { roles: input.roles ? [...new Set(input.roles)].sort() : null, invitedBy: input.invitedBy },
    },
    now,
  );
  return { token, invite: inviteRecord(row) };
}

export async function findInvite(em: EntityManager, id: string) {
  const row = await em.findOne(Token, { id, purpose: INVITE_PURPOSE });
  return row && !row.revokedAt ? row : null;
}

export async function loadInvites(
  em: EntityManager,
  ids: readonly string[],
): Promise<(InviteRecord | null)[]> {
  const rows = await em.find(Token, {
    id: { $in: [...new Set(ids)] },
    purpose: INVITE_PURPOSE,
    revokedAt: null,
  });
  const byId = new Map(rows.map((row) => [row.id, inviteRecord(row)]));
  return ids.map((id) => byId.get(id) ?? null);
}

/** Up to `limit` invites not revoked (pending, accepted or expired), newest first. */
export async function listInvites(em: EntityManager, { limit, after }: { limit: number; after?: string }) {
  const rows = await em.find(
    Token,
    { purpose: INVITE_PURPOSE, revokedAt: null, ...(after ? { id: { $lt: after } } : {}) },
    { orderBy: { id: 'desc' }, limit },
  );
  return rows.map(inviteRecord);
}

/** Withdraws a pending invite; false when it was already used or revoked. */
export async function revokeInvite(em: EntityManager, id: string) {
  const updated = await em.nativeUpdate(
    Token,
    { id, purpose: INVITE_PURPOSE, usedAt: null, revokedAt: null },
    { revokedAt: new Date() },
  );
  return updated === 1;
}
