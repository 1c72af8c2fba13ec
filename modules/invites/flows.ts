import { PorticoError } from '../../src/index.ts';
import type { TokenRedeemer } from '../sessions/index.ts';
import sessions from '../sessions/index.ts';
import users from '../users/index.ts';
import { INVITE_PURPOSE } from './service.ts';

/**
 * Accepts an invite: the address is the invite's; the profile brings the password and
 * name, checked before the token is consumed. Token and account change in one transaction.
 */
export const redeemInvite: TokenRedeemer = async (context, token, profile) => {
  const email = token.email ?? '';
  if (profile?.email && users.api.normalizeEmail(profile.email).key !== users.api.emailKey(email)) {
    throw new PorticoError('BAD_USER_INPUT', 'This invite is for another address.', { field: 'email' });
  }
  if (!profile?.password) {
    throw new PorticoError('BAD_USER_INPUT', 'Choose a password to accept the invite.', {
      field: 'password',
    });
  }
  users.api.normalizeName(profile.name);
  users.api.checkPasswordPolicy(profile.password);
  const passwordHash = await users.api.hashPassword(profile.password);
  const invited = (token.data?.roles as string[] | null | undefined) ?? null;
  const roles = invited && invited.length > 0 ? invited : context.runtime.settings.defaultRoles;
  const userId = await context.db.system.transactional(async (em) => {
    const now = new Date(context.runtime.clock.now());
    if (!(await sessions.api.consumeToken(em, token.hash, INVITE_PURPOSE, now))) {
      throw new PorticoError('INVALID_TOKEN', 'This link is invalid, expired or already used.');
    }
    const user = await users.api.createUser(em, { email, name: profile.name, passwordHash, roles });
    return user.id;
  });
  return { userId, method: 'invite' };
};
