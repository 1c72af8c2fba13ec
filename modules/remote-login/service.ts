import type { EntityManager } from '@mikro-orm/core';
import { z } from 'zod';
import { PorticoError } from '../../src/index.ts';
import users from '../users/index.ts';
import { RemoteIdentity } from './entities.ts';

const CREDENTIALS_MAX_BYTES = 16 * 1024;
const RESPONSE_MAX_BYTES = 64 * 1024;

/** What the endpoint must answer, with a 2xx, for a successful login. */
const remoteUser = z.object({
  id: z.union([z.string().min(1).max(256), z.number().int()]).transform(String),
  email: z.email().max(320),
  name: z.string().max(200).nullish(),
});
export type RemoteUser = z.output<typeof remoteUser>;

const invalidCredentials = () => new PorticoError('INVALID_CREDENTIALS', 'Invalid credentials.');
const unreachable = () =>
  new PorticoError('SERVICE_UNAVAILABLE', 'The remote login service did not answer; try again shortly.', {
    http: { status: 503, headers: { 'retry-after': '5' } },
  });

/**
 * Asks the endpoint: the credentials go as JSON; a 2xx `{ id, email, name? }` is a
 * login, any other answer INVALID_CREDENTIALS; no answer within the timeout is SERVICE_UNAVAILABLE (503).
 */
export async function askRemote(endpoint: string, timeoutMs: number, credentials: Record<string, unknown>) {
  const body = JSON.stringify(credentials);
  if (Buffer.byteLength(body) > CREDENTIALS_MAX_BYTES) throw invalidCredentials();
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body,
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch {
    throw unreachable();
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw invalidCredentials();
  }
  let text: string;
  try {
    text = await response.text();
  } catch {
    throw unreachable();
  }
  if (Buffer.byteLength(text) > RESPONSE_MAX_BYTES) throw invalidCredentials();
  let parsed: z.ZodSafeParseResult<RemoteUser>;
  try {
    parsed = remoteUser.safeParse(JSON.parse(text));
  } catch {
    throw invalidCredentials();
  }
  if (!parsed.success) throw invalidCredentials();
  return parsed.data;
}

/**
 * The local user for a remote one, found by the remote's stable id, whatever email the remote
 * gives now. A remote id seen for the first time gets a new user with the default roles; it
 * attaches to an existing local account with its email only with `linkByEmail` (and only to
 * one not linked to another remote id), otherwise CONFLICT and nothing is linked. Email and
 * name follow the remote.
 */
export async function upsertRemoteUser(
  em: EntityManager,
  remote: RemoteUser,
  { defaultRoles, linkByEmail }: { defaultRoles: readonly string[]; linkByEmail: boolean },
) {
  const link = await em.findOne(RemoteIdentity, { subject: remote.id });
  let user = link ? await users.api.findUser(em, link.userId) : null;
  if (!link) {
    const local = await users.api.findUserByEmail(em, remote.email);
    if (local) {
      if (!linkByEmail || (await em.count(RemoteIdentity, { userId: local.id })) > 0) {
        throw new PorticoError(
          'CONFLICT',
          'An account with this email exists and is not linked to this login; ask an admin.',
        );
      }
      user = local;
    }
  }
  if (!user) {
    user = await users.api.createUser(em, { email: remote.email, name: remote.name, roles: defaultRoles });
  } else {
    const { email, key } = users.api.normalizeEmail(remote.email);
    if (user.emailKey !== key) {
      const taken = await users.api.findUserByEmail(em, email);
      if (taken && taken.id !== user.id) {
        throw new PorticoError(
          'CONFLICT',
          'Another account already uses the address the login service gave.',
        );
      }
      user.email = email;
      user.emailKey = key;
    }
    if (remote.name !== undefined) user.name = users.api.normalizeName(remote.name);
  }
  if (!link) em.create(RemoteIdentity, { subject: remote.id, userId: user.id, createdAt: new Date() });
  await em.flush();
  return user;
}
