import { randomSecret, sha256, type Viewer } from '../../src/index.ts';

/** What an API key needs to hold leases (docs/http.md, Credentials); signed-in users need nothing more. */
export const LEASES_SCOPE = 'leases';

const SESSION = 's:';
const API_KEY = 'k:';
const SERVER = 'x:';

/** The holder a viewer's leases are recorded under: its session or API key; null when anonymous. */
export function holderOf(viewer: Viewer): string | null {
  if (viewer.sessionId) return `${SESSION}${viewer.sessionId}`;
  if (viewer.apiKeyId) return `${API_KEY}${viewer.apiKeyId}`;
  return null;
}

/** A holder for server-side code (`withLease`): no credential ends it, only release or expiry. */
export const serverHolder = () => `${SERVER}${randomSecret(16)}`;

/** What kind of credential holds a lease (the schema's LeaseHolderKind). */
export type HolderKind = 'SESSION' | 'API_KEY' | 'SERVER';

/** A holder's kind and the id of its session or API key (null for server code). */
export function credentialOf(
  holder: string,
): { kind: Exclude<HolderKind, 'SERVER'>; id: string } | { kind: 'SERVER'; id: null } {
  if (holder.startsWith(SESSION)) return { kind: 'SESSION', id: holder.slice(SESSION.length) };
  if (holder.startsWith(API_KEY)) return { kind: 'API_KEY', id: holder.slice(API_KEY.length) };
  return { kind: 'SERVER', id: null };
}

/** The sessions and API keys behind holders; server holders have none. */
export function credentialsOf(holders: readonly string[]) {
  const sessionIds: string[] = [];
  const apiKeyIds: string[] = [];
  for (const holder of holders) {
    const { kind, id } = credentialOf(holder);
    if (kind === 'SESSION') sessionIds.push(id);
    else if (kind === 'API_KEY') apiKeyIds.push(id);
  }
  return { sessionIds, apiKeyIds };
}

export const sessionHolder = (sessionId: string) => `${SESSION}${sessionId}`;
export const apiKeyHolder = (apiKeyId: string) => `${API_KEY}${apiKeyId}`;

/** What clients see of a holder: stable and comparable, but it names no session or key. */
export const opaqueHolder = (holder: string) => sha256(holder).slice(0, 24);
