import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Lower-case hex SHA-256: how secrets (session secrets, tokens, API keys) are stored. */
export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/** Constant-time comparison of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** A random secret of `bytes` bytes (32 = 256 bits), base64url-encoded. */
export const randomSecret = (bytes = 32) => randomBytes(bytes).toString('base64url');

export interface SealPasswords {
  /** Seals: the first secret of PORTICO_SECRET only. */
  seal: Record<number, string>;
  /** Opens what any of the secrets sealed. */
  open: Record<number, string>;
}

/**
 * iron-session password maps of PORTICO_SECRET's secrets. A seal records its password's id, so ids
 * must not depend on the secrets' order: each id is derived from its secret, and stays valid
 * whatever is added or removed.
 */
export function sealPasswords(secrets: readonly string[]): SealPasswords {
  const id = (secret: string) =>
    Number.parseInt(createHash('sha256').update(secret).digest('hex').slice(0, 8), 16);
  const [current = ''] = secrets;
  return {
    seal: { [id(current)]: current },
    open: Object.fromEntries(secrets.map((secret) => [id(secret), secret])),
  };
}
