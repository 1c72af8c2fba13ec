import type { EntityManager } from '@mikro-orm/core';
import { raw, UniqueConstraintViolationException } from '@mikro-orm/core';
import { z } from 'zod';
import { newId, PorticoError } from '../../src/index.ts';
import { User } from './entities.ts';

/** What the GraphQL `User` type reads: a `User` entity or a cached copy of one. */
export interface UserRecord {
  readonly id: string;
  readonly email: string;
  readonly name?: string | null;
  readonly roles: readonly string[];
  readonly disabled: boolean;
  readonly createdAt: Date;
  readonly lastLoginAt?: Date | null;
}

export const ADMIN_ROLE = 'admin';
export const NAME_MAX = 200;
const EMAIL_MAX = 320;
const SEARCH_MAX = EMAIL_MAX;
const emailSchema = z.email().max(EMAIL_MAX);

/**
 * An address as accounts are looked up by (docs/security.md): Unicode NFKC, trimmed, lower case. The
 * one normalisation for lookups, uniqueness and the login counters, so that spelling variants
 * ("X@…", " x@…", "x@…\u00a0", full-width letters) are one account everywhere.
 */
export const emailKey = (input: string) => input.normalize('NFKC').trim().toLowerCase();

/** Normalises (NFKC, trimmed) and validates an address; `key` is its identity (`emailKey`). */
export function normalizeEmail(input: string): { email: string; key: string } {
  const email = input.normalize('NFKC').trim();
  if (!emailSchema.safeParse(email).success) {
    throw new PorticoError('BAD_USER_INPUT', 'Enter a valid email address.', { field: 'email' });
  }
  return { email, key: emailKey(email) };
}

export function normalizeName(input: string | null | undefined): string | null {
  const name = input?.trim() || null;
  if (name && [...name].length > NAME_MAX) {
    throw new PorticoError('BAD_USER_INPUT', `A name has at most ${NAME_MAX} characters.`, { field: 'name' });
  }
  return name;
}

export function findUserByEmail(em: EntityManager, email: string): Promise<User | null> {
  return em.findOne(User, { emailKey: emailKey(email) });
}

export const findUser = (em: EntityManager, id: string) => em.findOne(User, { id });

export async function loadUsers(em: EntityManager, ids: readonly string[]): Promise<(User | null)[]> {
  const users = await em.find(User, { id: { $in: [...new Set(ids)] } });
  const byId = new Map(users.map((user) => [user.id, user]));
  return ids.map((id) => byId.get(id) ?? null);
}

export interface NewUser {
  email: string;
  name?: string | null;
  passwordHash?: string | null;
  roles: readonly string[];
}

/** Creates a user; CONFLICT when the address is taken. Flushes. */
export async function createUser(em: EntityManager, input: NewUser): Promise<User> {
  const { email, key } = normalizeEmail(input.email);
  const user = em.create(User, {
    id: newId(),
    email,
    emailKey: key,
    name: normalizeName(input.name),
    passwordHash: input.passwordHash ?? null,
    roles: [...new Set(input.roles)],
    admin: input.roles.includes(ADMIN_ROLE),
    disabled: false,
    createdAt: new Date(),
  });
  try {
    await em.flush();
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) {
      em.clear();
      throw new PorticoError('CONFLICT', 'An account with this email already exists.', { field: 'email' });
    }
    throw error;
  }
  return user;
}

export function setRoles(user: User, roles: readonly string[]): void {
  user.roles = [...new Set(roles)].sort();
  user.admin = user.roles.includes(ADMIN_ROLE);
}

/** Admins that can still sign in: the last one must not be demoted or disabled. */
export const countActiveAdmins = (em: EntityManager) => em.count(User, { admin: true, disabled: false });

export const adminExists = async (em: EntityManager) => (await em.count(User, { admin: true })) > 0;

/** Up to `limit` users in creation order, `after` an id, optionally matching `search` in email or name. */
export async function listUsers(
  em: EntityManager,
  { limit, after, search }: { limit: number; after?: string | null; search?: string | null },
): Promise<User[]> {
  const term = search?.trim().toLowerCase();
  // SQLite refuses LIKE patterns past 50,000 bytes; nothing searched for is longer than an address.
  if (term && [...term].length > SEARCH_MAX) {
    throw new PorticoError('BAD_USER_INPUT', `A search has at most ${SEARCH_MAX} characters.`, {
      field: 'search',
    });
  }
  // `%` and `_` in a search act as wildcards: harmless in an admin's search box.
  const pattern = term ? `%${term}%` : undefined;
  return em.find(
    User,
    {
      ...(after ? { id: { $gt: after } } : {}),
      ...(pattern
        ? { $or: [{ emailKey: { $like: pattern } }, { [raw('lower(name)')]: { $like: pattern } }] }
        : {}),
    },
    { orderBy: { id: 'asc' }, limit },
  );
}

/** A plain copy, safe to keep beyond the request that loaded it. */
export const userRecord = (user: UserRecord): UserRecord => ({
  id: user.id,
  email: user.email,
  name: user.name ?? null,
  roles: [...user.roles],
  disabled: user.disabled,
  createdAt: user.createdAt,
  lastLoginAt: user.lastLoginAt ?? null,
});
