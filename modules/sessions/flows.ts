import { html, PorticoError, type RequestContext } from '../../src/index.ts';
import audit from '../audit/index.ts';
import rateLimits from '../rate-limits/index.ts';
import roles from '../roles/index.ts';
import users from '../users/index.ts';
import { BOOTSTRAP_PURPOSE, markBootstrapped, revoke, sessionState, signOut, startSession } from './authn.ts';
import type { RevocationReason } from './entities.ts';
import { type LoginMethod, requireMethod } from './methods.ts';
import { BOOTSTRAPPED, consumeToken, findSession, findToken, isRedeemable, setFlagOnce } from './service.ts';

const invalidCredentials = () => new PorticoError('INVALID_CREDENTIALS', 'Invalid email or password.');
const invalidToken = () =>
  new PorticoError('INVALID_TOKEN', 'This link is invalid, expired or already used.');

/**
 * The password method. Unknown email, wrong password, disabled account and an account
 * without a password all give the same error after the same work.
 */
export const passwordMethod: LoginMethod = {
  id: 'password',
  async logIn({ db }, credentials) {
    const email = typeof credentials.email === 'string' ? credentials.email : '';
    const password = typeof credentials.password === 'string' ? credentials.password : '';
    const plausible = email.length <= 320 && password.length <= users.api.PASSWORD_MAX * 4;
    const user = plausible ? await users.api.findUserByEmail(db.system, email) : null;
    const hash = user && !user.disabled ? user.passwordHash : null;
    const matches = await users.api.verifyPassword(hash, plausible ? password : '');
    if (!user || !matches) throw invalidCredentials();
    return { userId: user.id };
  },
  loginForm: (csrf) => html`<form method="post" action="/login" aria-label="Sign in with a password">${csrf}
<label>Email <input name="email" type="email" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>`,
};

/** `logInWith(method, credentials)`: dispatches to an enabled method that takes credentials. */
export async function logInWith(context: RequestContext, id: string, credentials: Record<string, unknown>) {
  const { logIn } = requireMethod(context, id);
  if (!logIn) throw new PorticoError('BAD_USER_INPUT', `The "${id}" method does not take credentials.`);
  const account = String(credentials.email ?? credentials.username ?? credentials.login ?? '*');
  let userId: string;
  try {
    ({ userId } = await rateLimits.api.login(context, account, () => logIn(context, credentials)));
  } catch (error) {
    if (error instanceof PorticoError && error.code === 'INVALID_CREDENTIALS') {
      await audit.api.record(context, {
        kind: 'LOGIN_FAILED',
        detail: { method: id, account: account.slice(0, 320) },
      });
    }
    throw error;
  }
  const payload = await startSession(context, userId, id);
  await audit.api.record(context, { kind: 'LOGIN_SUCCEEDED', userId, detail: { method: id } });
  return payload;
}

export const logIn = (context: RequestContext, email: string, password: string) =>
  logInWith(context, 'password', { email, password });

export interface SignUpInput {
  email: string;
  password: string;
  name?: string | null;
  inviteToken?: string | null;
}

export async function signUp(context: RequestContext, input: SignUpInput) {
  const { runtime, db } = context;
  const mode = runtime.settings.signup;
  // The mode is checked before the address is looked at: the answer never depends on whether it exists.
  if (mode === 'closed' || (mode === 'invite' && !input.inviteToken)) {
    throw new PorticoError(
      'SIGNUP_CLOSED',
      mode === 'closed' ? 'Sign-up is closed.' : 'Sign-up needs an invite.',
    );
  }
  await rateLimits.api.signUp(context);
  if (input.inviteToken) {
    const { email, password, name } = input;
    return redeemToken(context, input.inviteToken, { email, password, name }, 'invite');
  }
  requireMethod(context, 'password');
  users.api.normalizeEmail(input.email);
  users.api.normalizeName(input.name);
  users.api.checkPasswordPolicy(input.password);
  const passwordHash = await users.api.hashPassword(input.password);
  const user = await users.api.createUser(db.system, {
    email: input.email,
    name: input.name,
    passwordHash,
    roles: runtime.settings.defaultRoles,
  });
  const payload = await startSession(context, user.id, 'password');
  await audit.api.record(context, { kind: 'SIGNED_UP', userId: user.id, detail: { method: 'password' } });
  return payload;
}

/** Ends the request's session; false when there was none. The cookie is cleared either way. */
export async function logOut(context: RequestContext) {
  const { sessionId } = context.viewer;
  signOut(context);
  if (!sessionId) return false;
  const [revoked] = await revoke(context.runtime, context.db.system, { id: sessionId }, 'LOGOUT');
  if (revoked) await audit.api.record(context, { kind: 'LOGOUT', userId: revoked.userId });
  return revoked !== undefined;
}

export async function changePassword(context: RequestContext, currentPassword: string, newPassword: string) {
  const { db, viewer, runtime } = context;
  const user = await users.api.findUser(db.system, viewer.userId!);
  if (!user || !(await users.api.verifyPassword(user.passwordHash, currentPassword)))
    throw invalidCredentials();
  users.api.checkPasswordPolicy(newPassword);
  user.passwordHash = await users.api.hashPassword(newPassword);
  await db.system.flush();
  const others = viewer.sessionId ? { userId: user.id, id: { $ne: viewer.sessionId } } : { userId: user.id };
  const revoked = await revoke(runtime, db.system, others, 'PASSWORD_CHANGED');
  await audit.api.record(context, {
    kind: 'PASSWORD_CHANGED',
    userId: user.id,
    detail: { sessionsRevoked: revoked.length },
  });
  return true;
}

/** Revokes one session: the viewer's own (REVOKED), or anyone's for an admin (ADMIN). */
export async function revokeSession(context: RequestContext, sessionId: string) {
  const { db, viewer, runtime } = context;
  const session = await findSession(db.system, sessionId);
  const own = session?.userId === viewer.userId;
  if (!session || !(own || roles.api.isAdmin(viewer)))
    throw new PorticoError('NOT_FOUND', 'No such session.');
  const reason = own ? 'REVOKED' : 'ADMIN';
  const revoked = await revoke(runtime, db.system, { id: session.id }, reason);
  if (revoked.length > 0) await recordRevocation(context, session.userId, reason, revoked.length);
  if (session.id === viewer.sessionId) signOut(context);
  return revoked.length > 0;
}

export async function revokeOtherSessions(context: RequestContext) {
  const { db, viewer, runtime } = context;
  const where = viewer.sessionId
    ? { userId: viewer.userId!, id: { $ne: viewer.sessionId } }
    : { userId: viewer.userId! };
  const revoked = await revoke(runtime, db.system, where, 'REVOKED');
  if (revoked.length > 0) await recordRevocation(context, viewer.userId!, 'REVOKED', revoked.length);
  return revoked.length;
}

const recordRevocation = (context: RequestContext, userId: string, reason: RevocationReason, count: number) =>
  audit.api.record(context, { kind: 'SESSIONS_REVOKED', userId, detail: { reason, count } });

async function targetUser(context: RequestContext, userId: string) {
  const user = await users.api.findUser(context.db.system, userId);
  if (!user) throw new PorticoError('NOT_FOUND', 'No such user.');
  return user;
}

/** Admin. Changing roles revokes the user's sessions (ROLES_CHANGED); the last admin keeps "admin". */
export async function setUserRoles(context: RequestContext, userId: string, names: readonly string[]) {
  const { db, runtime } = context;
  const unknown = roles.api.unknownRoles(runtime.settings, names);
  if (unknown.length > 0) {
    throw new PorticoError('BAD_USER_INPUT', `Unknown roles: ${unknown.join(', ')}.`, { field: 'roles' });
  }
  const user = await targetUser(context, userId);
  const before = [...user.roles].sort().join(',');
  const losesAdmin = user.roles.includes(roles.api.ADMIN) && !names.includes(roles.api.ADMIN);
  if (losesAdmin && !user.disabled && (await users.api.countActiveAdmins(db.system)) <= 1) {
    throw new PorticoError('CONFLICT', 'This is the last admin; make another admin first.');
  }
  users.api.setRoles(user, names);
  if (user.roles.join(',') === before) return user;
  await db.system.flush();
  runtime.pubsub.publish('user.changed', { userId: user.id });
  await revoke(runtime, db.system, { userId: user.id }, 'ROLES_CHANGED');
  await audit.api.record(context, {
    kind: 'ROLES_CHANGED',
    userId: user.id,
    detail: { from: before ? before.split(',') : [], to: user.roles },
  });
  return user;
}

/** Admin. Disabling revokes the user's sessions (USER_DISABLED); nobody disables themself. */
export async function setUserDisabled(context: RequestContext, userId: string, disabled: boolean) {
  const { db, runtime, viewer } = context;
  if (disabled && userId === viewer.userId) {
    throw new PorticoError('BAD_USER_INPUT', 'You cannot disable your own account.', { field: 'userId' });
  }
  const user = await targetUser(context, userId);
  if (user.disabled === disabled) return user;
  user.disabled = disabled;
  await db.system.flush();
  runtime.pubsub.publish('user.changed', { userId: user.id });
  if (disabled) {
    await revoke(runtime, db.system, { userId: user.id }, 'USER_DISABLED');
    for (const hook of sessionState(runtime).disableHooks) await hook(db.system, user.id);
  }
  await audit.api.record(context, { kind: disabled ? 'USER_DISABLED' : 'USER_ENABLED', userId: user.id });
  return user;
}

export async function revokeUserSessions(context: RequestContext, userId: string) {
  const user = await targetUser(context, userId);
  const revoked = await revoke(context.runtime, context.db.system, { userId: user.id }, 'ADMIN');
  if (revoked.length > 0) await recordRevocation(context, user.id, 'ADMIN', revoked.length);
  return revoked.length;
}

// ---------------------------------------------------------------- single-use tokens

export interface Profile {
  email?: string | null;
  name?: string | null;
  password?: string | null;
}

/** Redeems a token of one purpose: consumes it (atomically) and signs someone in. */
export type TokenRedeemer = (
  context: RequestContext,
  token: {
    hash: string;
    email?: string | null;
    userId?: string | null;
    data?: Record<string, unknown> | null;
  },
  profile: Profile | null | undefined,
) => Promise<{ userId: string; method: string }>;

const redeemers = new Map<string, TokenRedeemer>();

/** Lets a module handle the tokens it issues (invites, login links, ...). */
export function registerTokenPurpose(purpose: string, redeemer: TokenRedeemer) {
  if (redeemers.has(purpose) && redeemers.get(purpose) !== redeemer) {
    throw new Error(`Token purpose "${purpose}" is registered twice`);
  }
  redeemers.set(purpose, redeemer);
}

export async function redeemToken(
  context: RequestContext,
  token: string,
  profile: Profile | null | undefined,
  expectedPurpose?: string,
) {
  const { userId, method } = await rateLimits.api.redeem(context, async () => {
    // Only a token that matches nothing is a guess. One that was issued (used, expired, or lost
    // a race to a concurrent redemption) is refused without using up the client's budget.
    const row = await findToken(context.db.system, token);
    if (!row) throw invalidToken();
    try {
      const redeemer = redeemers.get(row.purpose);
      const now = new Date(context.runtime.clock.now());
      if (!redeemer || !isRedeemable(row, now) || (expectedPurpose && row.purpose !== expectedPurpose)) {
        throw invalidToken();
      }
      return await redeemer(context, row, profile);
    } catch (error) {
      throw rateLimits.api.notAGuess(error);
    }
  });
  const payload = await startSession(context, userId, method);
  const kind =
    method === 'bootstrap' ? 'BOOTSTRAP' : method === 'invite' ? 'INVITE_ACCEPTED' : 'LOGIN_SUCCEEDED';
  await audit.api.record(context, { kind, userId, detail: { method } });
  return payload;
}

/**
 * The first admin. The profile is checked and the password hashed before anything
 * is written, so bad input does not burn the token. Then, in one transaction: the
 * token is consumed, the "bootstrapped" flag is inserted (its primary key lets one
 * bootstrap ever succeed, across tokens, races and restarts) and the admin created.
 */
export const redeemBootstrap: TokenRedeemer = async (context, token, profile) => {
  if (!profile?.email || !profile.password) {
    throw new PorticoError('BAD_USER_INPUT', 'The first admin needs an email and a password.', {
      field: 'profile',
    });
  }
  users.api.normalizeEmail(profile.email);
  users.api.normalizeName(profile.name);
  users.api.checkPasswordPolicy(profile.password);
  const passwordHash = await users.api.hashPassword(profile.password);
  const { email, name } = profile;
  const userId = await context.db.system.transactional(async (em) => {
    const now = new Date(context.runtime.clock.now());
    if (!(await consumeToken(em, token.hash, BOOTSTRAP_PURPOSE, now))) throw invalidToken();
    if (!(await setFlagOnce(em, BOOTSTRAPPED, null))) throw invalidToken();
    const user = await users.api.createUser(em, { email, name, passwordHash, roles: [roles.api.ADMIN] });
    return user.id;
  });
  markBootstrapped(context.runtime);
  context.log.info({ userId }, 'first admin created; bootstrap closed');
  return { userId, method: 'bootstrap' };
};
