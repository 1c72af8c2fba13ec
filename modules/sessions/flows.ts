import { html, PorticoError, type RequestContext } from '../../src/index.ts';
import audit from '../audit/index.ts';
import rateLimits from '../rate-limits/index.ts';
import roles from '../roles/index.ts';
import users from '../users/index.ts';
import type { RevocationReason } from './entities.ts';
import type { LoginMethod, Profile, TokenRedeemer } from './extensions.ts';
import { BOOTSTRAP_PURPOSE, type Sessions, signOut } from './instance.ts';
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
<h2>With your password</h2>
<label>Email <input name="email" type="email" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>`,
};

/** `logInWith(method, credentials)`: dispatches to an enabled method that takes credentials. */
export async function logInWith(
  sessions: Sessions,
  context: RequestContext,
  id: string,
  credentials: Record<string, unknown>,
) {
  const { logIn } = sessions.signIn.require(id);
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
  const payload = await sessions.startSession(context, userId, id);
  await audit.api.record(context, { kind: 'LOGIN_SUCCEEDED', userId, detail: { method: id } });
  return payload;
}

export const logIn = (sessions: Sessions, context: RequestContext, email: string, password: string) =>
  logInWith(sessions, context, 'password', { email, password });

export interface SignUpInput {
  email: string;
  password: string;
  name?: string | null;
  inviteToken?: string | null;
}

export async function signUp(sessions: Sessions, context: RequestContext, input: SignUpInput) {
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
    return redeemToken(sessions, context, input.inviteToken, { email, password, name }, 'invite');
  }
  sessions.signIn.require('password');
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
  const payload = await sessions.startSession(context, user.id, 'password');
  await audit.api.record(context, { kind: 'SIGNED_UP', userId: user.id, detail: { method: 'password' } });
  return payload;
}

/** Ends the request's session; false when there was none. The cookie is cleared either way. */
export async function logOut(sessions: Sessions, context: RequestContext) {
  const { sessionId } = context.viewer;
  signOut(context);
  if (!sessionId) return false;
  const [revoked] = await sessions.revoke(context.db.system, { id: sessionId }, 'LOGOUT');
  if (revoked) await audit.api.record(context, { kind: 'LOGOUT', userId: revoked.userId });
  return revoked !== undefined;
}

export async function changePassword(
  sessions: Sessions,
  context: RequestContext,
  currentPassword: string,
  newPassword: string,
) {
  const { db, viewer } = context;
  const user = await users.api.findUser(db.system, viewer.userId!);
  if (!user || !(await users.api.verifyPassword(user.passwordHash, currentPassword)))
    throw invalidCredentials();
  users.api.checkPasswordPolicy(newPassword);
  user.passwordHash = await users.api.hashPassword(newPassword);
  await db.system.flush();
  const others = viewer.sessionId ? { userId: user.id, id: { $ne: viewer.sessionId } } : { userId: user.id };
  const revoked = await sessions.revoke(db.system, others, 'PASSWORD_CHANGED');
  await audit.api.record(context, {
    kind: 'PASSWORD_CHANGED',
    userId: user.id,
    detail: { sessionsRevoked: revoked.length },
  });
  return true;
}

/** Revokes one session: the viewer's own (REVOKED), or anyone's for an admin (ADMIN). */
export async function revokeSession(sessions: Sessions, context: RequestContext, sessionId: string) {
  const { db, viewer } = context;
  const session = await findSession(db.system, sessionId);
  const own = session?.userId === viewer.userId;
  if (!session || !(own || roles.api.isAdmin(viewer)))
    throw new PorticoError('NOT_FOUND', 'No such session.');
  const reason = own ? 'REVOKED' : 'ADMIN';
  const revoked = await sessions.revoke(db.system, { id: session.id }, reason);
  if (revoked.length > 0) await recordRevocation(context, session.userId, reason, revoked.length);
  if (session.id === viewer.sessionId) signOut(context);
  return revoked.length > 0;
}

export async function revokeOtherSessions(sessions: Sessions, context: RequestContext) {
  const { db, viewer } = context;
  const where = viewer.sessionId
    ? { userId: viewer.userId!, id: { $ne: viewer.sessionId } }
    : { userId: viewer.userId! };
  const revoked = await sessions.revoke(db.system, where, 'REVOKED');
  if (revoked.length > 0) await recordRevocation(context, viewer.userId!, 'REVOKED', revoked.length);
  return revoked.length;
}

const recordRevocation = (context: RequestContext, userId: string, reason: RevocationReason, count: number) =>
  audit.api.record(context, { kind: 'SESSIONS_REVOKED', userId, detail: { reason, count } });

export async function revokeUserSessions(sessions: Sessions, context: RequestContext, userId: string) {
  const user = await users.api.findUser(context.db.system, userId);
  if (!user) throw new PorticoError('NOT_FOUND', 'No such user.');
  const revoked = await sessions.revoke(context.db.system, { userId: user.id }, 'ADMIN');
  if (revoked.length > 0) await recordRevocation(context, user.id, 'ADMIN', revoked.length);
  return revoked.length;
}

// ---------------------------------------------------------------- single-use tokens

export async function redeemToken(
  sessions: Sessions,
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
      const redeemer = sessions.signIn.redeemerOf(row.purpose);
      const now = new Date(context.runtime.clock.now());
      if (!redeemer || !isRedeemable(row, now) || (expectedPurpose && row.purpose !== expectedPurpose)) {
        throw invalidToken();
      }
      return await redeemer(context, row, profile);
    } catch (error) {
      throw rateLimits.api.notAGuess(error);
    }
  });
  const payload = await sessions.startSession(context, userId, method);
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
export const redeemBootstrap =
  (sessions: Sessions): TokenRedeemer =>
  async (context, token, profile) => {
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
    sessions.markBootstrapped();
    context.log.info({ userId }, 'first admin created; bootstrap closed');
    return { userId, method: 'bootstrap' };
  };
