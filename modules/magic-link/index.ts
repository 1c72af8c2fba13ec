import { defineModule } from '../../src/index.ts';
import mail from '../mail/index.ts';
import sessions from '../sessions/index.ts';
import { LOGIN_PURPOSE, type LoginLinks, magicLinkMethod, redeemLoginLink } from './flows.ts';
import { registerLoginLinks } from './graphql.ts';
import { loginLinkRoutes } from './routes.ts';

/** Sign-in links by mail: `requestLoginLink`, the /login form, and the `login` token purpose. */
export default defineModule({
  name: 'magic-link',
  dependsOn: ['sessions', 'users', 'mail', 'rate-limits'],
  contributes: [
    sessions.api.loginMethods.with(magicLinkMethod),
    sessions.api.tokenPurposes.with({ purpose: LOGIN_PURPOSE, redeem: redeemLoginLink }),
  ],
  setup(_runtime, use): LoginLinks {
    const links = { mail: use(mail), sessions: use(sessions) };
    return { ...links, routes: loginLinkRoutes(links) };
  },
  graphql: registerLoginLinks,
});
