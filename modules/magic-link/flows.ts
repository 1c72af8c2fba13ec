import { html, type ModuleInstance, PorticoError, type RequestContext } from '../../src/index.ts';
import type { Mail } from '../mail/index.ts';
import rateLimits from '../rate-limits/index.ts';
import sessions, { type LoginMethod, type Sessions, type TokenRedeemer } from '../sessions/index.ts';
import users from '../users/index.ts';

export const LOGIN_PURPOSE = 'login';
export const LOGIN_LINK_TTL_SECONDS = 15 * 60;

/** Magic links work through `requestLoginLink` and `/auth/redeem`, not `logInWith`. */
export const magicLinkMethod: LoginMethod = {
  id: 'magic-link',
  loginForm: (
    csrf,
  ) => html`<form method="post" action="/auth/login-link" aria-label="Email me a sign-in link">${csrf}
<h2>With a link by email</h2>
<label>Email <input name="email" type="email" autocomplete="email" required></label>
<button type="submit">Email me a sign-in link</button></form>`,
};

/**
 * Always true, answered before the address is even looked up: the time taken and the
 * answer are the same whether or not an account exists. The link is issued and mailed
 * in the background; failures go to the log.
 */
export async function requestLoginLink(
  links: LoginLinks,
  context: RequestContext,
  email: string,
): Promise<boolean> {
  const { runtime } = context;
  if (!links.sessions.signIn.isEnabled(magicLinkMethod.id)) {
    throw new PorticoError('FORBIDDEN', 'The "magic-link" login method is not enabled.');
  }
  const address = users.api.normalizeEmail(email);
  await rateLimits.api.loginLink(context, address.email);
  void (async () => {
    const em = runtime.db.system.em.fork();
    const user = await users.api.findUserByEmail(em, address.email);
    if (!user || user.disabled) return;
    const { token } = await sessions.api.issueToken(
      em,
      { purpose: LOGIN_PURPOSE, ttlSeconds: LOGIN_LINK_TTL_SECONDS, userId: user.id },
      new Date(runtime.clock.now()),
    );
    const link = `${runtime.env.publicUrl}/auth/redeem?token=${token}`;
    await links.mail.send({
      to: user.email,
      subject: 'Your sign-in link',
      text: `Sign in to Portico with this link. It works once, for 15 minutes:\n\n${link}\n\nIf you did not ask for it, ignore this message.\n`,
    });
  })().catch((error: unknown) => runtime.log.error({ err: error }, 'login link not sent'));
  return true;
}

export const redeemLoginLink: TokenRedeemer = async (context, token) => {
  const invalid = () => new PorticoError('INVALID_TOKEN', 'This link is invalid, expired or already used.');
  const user = token.userId ? await users.api.findUser(context.db.system, token.userId) : null;
  if (!user || user.disabled) throw invalid();
  const now = new Date(context.runtime.clock.now());
  if (!(await sessions.api.consumeToken(context.db.system, token.hash, LOGIN_PURPOSE, now))) throw invalid();
  return { userId: user.id, method: magicLinkMethod.id };
};

/** What sending a link needs in one gateway: its mail and its login methods. */
export interface LoginLinks extends ModuleInstance {
  readonly mail: Mail;
  readonly sessions: Sessions;
}
