import { defineModule } from '../../src/index.ts';
import sessions from '../sessions/index.ts';
import { redeemInvite } from './flows.ts';
import { InviteRef, registerInvites } from './graphql.ts';
import { INVITE_PURPOSE } from './service.ts';

/** Invites: admins invite an address with roles; the link signs the invitee up (any sign-up mode). */
export default defineModule({
  name: 'invites',
  dependsOn: ['sessions', 'users', 'roles', 'audit'],
  graphql: registerInvites,
  contributes: [sessions.api.tokenPurposes.with({ purpose: INVITE_PURPOSE, redeem: redeemInvite })],
  api: { InviteRef },
});
