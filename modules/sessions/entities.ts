import { defineEntity, p } from '@mikro-orm/core';

export const REVOCATION_REASONS = [
  'LOGOUT',
  'REVOKED',
  'ADMIN',
  'EXPIRED',
  'USER_DISABLED',
  'ROLES_CHANGED',
  'PASSWORD_CHANGED',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/** A login. The cookie holds an iron-sealed `{ id, secret }`; the row holds only the secret's SHA-256. */
const SessionSchema = defineEntity({
  name: 'Session',
  tableName: 'sessions',
  properties: {
    id: p.string().primary(),
    secretHash: p.string().length(64),
    userId: p.string().index(),
    method: p.string().length(64),
    createdAt: p.datetime(),
    lastSeenAt: p.datetime(),
    /** Absolute end: login time plus `session.absoluteTimeoutHours`. */
    expiresAt: p.datetime(),
    revokedAt: p.datetime().nullable(),
    revokedReason: p.enum(REVOCATION_REASONS).nullable(),
    ip: p.string().length(64).nullable(),
    userAgent: p.string().length(512).nullable(),
  },
});
export class Session extends SessionSchema.class {}
SessionSchema.setClass(Session);

/** A single-use token (login link, invite, bootstrap, device code), stored as its SHA-256. */
const TokenSchema = defineEntity({
  name: 'Token',
  tableName: 'tokens',
  properties: {
    id: p.string().primary(),
    hash: p.string().length(64).unique(),
    purpose: p.string().length(32),
    userId: p.string().nullable(),
    email: p.string().length(320).nullable(),
    data: p.json<Record<string, unknown>>().nullable(),
    createdAt: p.datetime(),
    /** Null: valid until used (bootstrap). */
    expiresAt: p.datetime().nullable(),
    usedAt: p.datetime().nullable(),
    /** Withdrawn before use (a revoked invite). */
    revokedAt: p.datetime().nullable(),
  },
});
export class Token extends TokenSchema.class {}
TokenSchema.setClass(Token);

/** One-way switches of the installation, e.g. "bootstrapped"; the primary key makes each happen once. */
const SystemFlagSchema = defineEntity({
  name: 'SystemFlag',
  tableName: 'system_flags',
  properties: {
    name: p.string().length(64).primary(),
    value: p.string().nullable(),
    createdAt: p.datetime(),
  },
});
export class SystemFlag extends SystemFlagSchema.class {}
SystemFlagSchema.setClass(SystemFlag);

export { SessionSchema, SystemFlagSchema, TokenSchema };
