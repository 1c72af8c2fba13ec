import { createClient, PorticoClientError } from '../../../client/index.ts';
import { suspectAway } from './connection.ts';

/**
 * The gateway that served this page; the browser's session cookie is the credential. Its
 * subscriptions' socket closing is the first sign that the gateway went away.
 */
export const client = createClient({
  url: location.origin,
  onSocketChange: (open) => {
    if (!open) suspectAway();
  },
});

/** Something that went wrong, in the contract's terms: its `extensions.code` and message. */
export interface Problem {
  code: string;
  message: string;
  extensions: Record<string, unknown>;
}

/**
 * The problem behind a failed call. A request that reached no server has no contract code:
 * it is shown as NETWORK_ERROR, and the console checks whether the gateway is away. An ended
 * session sends the browser to the login page.
 */
export function problemOf(error: unknown): Problem {
  if (error instanceof PorticoClientError) {
    if (error.code === 'NETWORK_ERROR') suspectAway();
    if (error.code === 'UNAUTHENTICATED') signInAgain('ended');
    const first = error.errors[0];
    return {
      code: error.code,
      message: first?.message ?? error.message,
      extensions: first?.extensions ?? {},
    };
  }
  suspectAway();
  return {
    code: 'NETWORK_ERROR',
    message: error instanceof Error ? error.message : String(error),
    extensions: {},
  };
}

let leaving = false;

/** True once the page is on its way out: subscriptions then stop reopening. */
export const isLeaving = () => leaving;

/** Leaves the console for another page (the first call wins; later ones would only race it). */
export function leave(url: string) {
  if (leaving) return;
  leaving = true;
  location.assign(url);
}

/** Leaves for the login page, which says why and leads back here afterwards. */
export function signInAgain(reason: 'revoked' | 'expired' | 'ended') {
  leave(`/login?reason=${reason}&next=${encodeURIComponent(location.pathname)}`);
}
