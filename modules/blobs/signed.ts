import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Runtime, Viewer } from '../../src/index.ts';
import { blobPath } from './service.ts';

/** The longest a signed URL may live: 7 days. */
export const MAX_SIGNED_SECONDS = 7 * 24 * 60 * 60;

/**
 * Signed URLs: `<Blob.url>?exp=<unix seconds>&by=<signer>&sig=<HMAC>`. `by` names the credential
 * that signed, `s_<session id>` or `k_<API key id>` (ids, never secrets), so that ending that
 * session or revoking that key ends the URL too. The MAC covers the row id (so the URL works with
 * either form of the path, see `rowIdOfPath`), expiry and signer, keyed by a key derived from
 * PORTICO_SECRET: the newest secret signs, any configured one verifies (rotation).
 */
const SIGNER = /^([sk])_([0-9a-f]{8,64})$/;
const KEY_PURPOSE = 'portico/blobs/signed-url/v1';

const keys = new Map<string, Buffer>();
function keyOf(secret: string): Buffer {
  let key = keys.get(secret);
  if (!key) {
    key = createHmac('sha256', secret).update(KEY_PURPOSE).digest();
    keys.set(secret, key);
  }
  return key;
}

const mac = (secret: string, id: string, exp: string, by: string) =>
  createHmac('sha256', keyOf(secret)).update(`${id}\n${exp}\n${by}`).digest();

/** The viewer's credential as a signer; null without one (an anonymous viewer cannot sign). */
export function signerOf(viewer: Viewer): string | null {
  if (viewer.sessionId) return `s_${viewer.sessionId}`;
  if (viewer.apiKeyId) return `k_${viewer.apiKeyId}`;
  return null;
}

export function signedPath(runtime: Runtime, id: string, signer: string, expiresInSeconds: number): string {
  const exp = String(Math.floor(runtime.clock.now() / 1000) + expiresInSeconds);
  const sig = mac(runtime.env.secrets[0]!, id, exp, signer).toString('base64url');
  return `${blobPath({ id })}?${new URLSearchParams({ exp, by: signer, sig })}`;
}

/**
 * Whether the query of a download names a valid, unexpired signature of this blob by a credential
 * that still stands. The MAC is compared in constant time, before any database work.
 */
export async function signatureAllows(
  runtime: Runtime,
  id: string,
  query: URLSearchParams,
): Promise<boolean> {
  const exp = query.get('exp') ?? '';
  const by = query.get('by') ?? '';
  const given = Buffer.from(query.get('sig') ?? '', 'base64url');
  const signer = SIGNER.exec(by);
  if (!signer || !/^\d{1,12}$/.test(exp) || given.length !== 32) return false;
  if (Number(exp) * 1000 <= runtime.clock.now()) return false;
  const valid = runtime.env.secrets
    .map((secret) => timingSafeEqual(mac(secret, id, exp, by), given))
    .some(Boolean);
  if (!valid) return false;
  const [, kind, credential] = signer as unknown as [string, 's' | 'k', string];
  const ended = await runtime.live.findEnded(kind === 's' ? 'session' : 'apiKey', [credential]);
  return !ended.has(credential);
}
