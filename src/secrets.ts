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
