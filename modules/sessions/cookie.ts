import { parseCookie, stringifySetCookie } from 'cookie';
import { sealData, unsealData } from 'iron-session';
import type { SessionSettings } from './config.ts';

export interface SessionCredential {
  id: string;
  secret: string;
}

export const cookieName = (settings: SessionSettings) =>
  settings.cookieSecure ? '__Host-portico_session' : 'portico_session';

/**
 * A seal exactly as `sealCredential` writes it: iron's eight fields (`Fe26.2`, password id, salt,
 * IV, ciphertext, expiry, HMAC salt, HMAC), then iron-session's `~2`.
 */
const SEAL =
  /^Fe26\.2\*\d{1,10}\*[0-9a-f]{64}\*([\w-]{22})\*([\w-]+)\*[1-9]\d{0,15}\*[0-9a-f]{64}\*([\w-]{43})~2$/;
const canonicalBase64Url = (text: string) => Buffer.from(text, 'base64url').toString('base64url') === text;

/**
 * The session cookie's seal, read strictly: iron-session ignores whatever follows `~` and
 * decoders skip stray characters, so only a seal in exactly the form written is taken (the
 * raw value, not URL-decoded; base64url fields canonical). Anything else is no cookie.
 */
export function readSessionCookie(request: Request, settings: SessionSettings): string | undefined {
  const header = request.headers.get('cookie');
  if (!header) return undefined;
  const value = parseCookie(header, { decode: (raw) => raw })[cookieName(settings)];
  const fields = value ? SEAL.exec(value) : null;
  return fields?.slice(1).every(canonicalBase64Url) ? value : undefined;
}

export const sealCredential = (
  credential: SessionCredential,
  password: Record<number, string>,
  ttlSeconds: number,
) => sealData({ i: credential.id, s: credential.secret }, { password, ttl: ttlSeconds });

/** The credential in a sealed cookie, or null for anything tampered, expired or malformed. */
export async function unsealCredential(
  sealed: string,
  password: Record<number, string>,
  ttlSeconds: number,
): Promise<SessionCredential | null> {
  try {
    const data = await unsealData<{ i?: unknown; s?: unknown }>(sealed, { password, ttl: ttlSeconds });
    return typeof data.i === 'string' && typeof data.s === 'string' ? { id: data.i, secret: data.s } : null;
  } catch {
    return null;
  }
}

export function sessionCookie(sealed: string, settings: SessionSettings): string {
  // A browser-session cookie: no Max-Age; the row's timeouts decide how long it works.
  return stringifySetCookie({
    name: cookieName(settings),
    value: sealed,
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: settings.cookieSecure,
  });
}

export const clearedSessionCookie = (settings: SessionSettings) =>
  stringifySetCookie({
    name: cookieName(settings),
    value: '',
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: settings.cookieSecure,
    maxAge: 0,
  });
