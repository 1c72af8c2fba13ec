import { ExtensionPoint, type RequestContext, type SafeHtml } from '../../src/index.ts';

/**
 * A login method. A module contributes one to `loginMethods`; `methods` in the configuration
 * enables it. `logIn` serves `logInWith(method, credentials)`; methods that work through links
 * or pages (magic-link, device) may leave it out.
 */
export interface LoginMethod {
  id: string;
  /** Checks the credentials; returns the user to sign in, or throws (INVALID_CREDENTIALS, ...). */
  logIn?: (context: RequestContext, credentials: Record<string, unknown>) => Promise<{ userId: string }>;
  /** Its section of the /login page: a form carrying `csrf` (hidden fields: the CSRF token, and `next` when the page has one). */
  loginForm?: (csrf: SafeHtml) => SafeHtml;
}

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

/** Who handles the single-use tokens of one purpose (invites, login links, ...), which the module issues. */
export interface TokenPurpose {
  purpose: string;
  redeem: TokenRedeemer;
}

export const loginMethods = new ExtensionPoint<LoginMethod>('sessions: login method');
export const tokenPurposes = new ExtensionPoint<TokenPurpose>('sessions: token purpose');
