import type { EntityManager, FilterQuery } from '@mikro-orm/core';
import { LRUCache } from 'lru-cache';
import {
  type CredentialEnd,
  inBatches,
  type ModuleInstance,
  type RequestContext,
  type Runtime,
  type Viewer,
} from '../../src/index.ts';
import roles from '../roles/index.ts';
import users, { type UserRecord } from '../users/index.ts';
import { ApiKey } from './entities.ts';
import {
  type ApiKeyRecord,
  apiKeyRecord,
  findApiKey,
  isUsable,
  parseKey,
  revokeApiKeys,
  secretMatches,
  touchApiKey,
} from './service.ts';

declare module '../../src/pubsub.ts' {
  interface Topics {
    /** An API key stopped working before its time. */
    'apiKey.revoked': { apiKeyId: string; userId: string; reason: string; at: string };
  }
}

/** A usable key with its user, as the hot path needs it. */
export interface KeySnapshot {
  readonly key: ApiKeyRecord;
  readonly user: UserRecord;
  readonly viewer: Viewer;
}

// Reloaded at least this often, which also bounds how often lastUsedAt is written.
const SNAPSHOT_TTL_MS = 60_000;

/** The key presented as `Authorization: Bearer pk_…`, if any. */
function presentedKey(request: Request): string | null {
  const header = request.headers.get('authorization');
  if (!header) return null;
  const [scheme, value] = header.split(' ', 2);
  return scheme?.toLowerCase() === 'bearer' && value?.startsWith('pk_') ? value.trim() : null;
}

/** The API keys module in one gateway: the bearer credential with its cache, revocation, and the re-check of open streams. */
export class ApiKeys implements ModuleInstance {
  readonly #runtime: Runtime;
  readonly #cache = new LRUCache<string, KeySnapshot>({ max: 10_000, ttl: SNAPSHOT_TTL_MS });
  #stops: (() => Promise<void> | void)[] = [];

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
  }

  readonly credentials = (context: RequestContext) => this.#resolveViewer(context);

  start() {
    const { pubsub } = this.#runtime;
    const cache = this.#cache;
    this.#stops.push(
      pubsub.on('apiKey.revoked', ({ apiKeyId }) => cache.delete(apiKeyId)),
      pubsub.on('user.changed', ({ userId }) => {
        for (const [id, snapshot] of cache.entries()) if (snapshot.user.id === userId) cache.delete(id);
      }),
      // Revocations may have been missed.
      pubsub.onGap(() => cache.clear()),
      this.#watchLiveKeys(),
    );
  }

  async stop() {
    for (const stop of this.#stops.splice(0)) await stop();
  }

  /**
   * The credential resolver for API keys. A malformed, unknown, revoked or expired key,
   * or one whose user is disabled, makes the request anonymous.
   */
  async #resolveViewer(context: RequestContext): Promise<Viewer | null> {
    const presented = presentedKey(context.request);
    const parsed = presented ? parseKey(presented) : null;
    if (!parsed) return null;
    const cache = this.#cache;
    let snapshot = cache.get(parsed.id);
    if (!snapshot) {
      const loaded = await this.#loadSnapshot(context.db.system, parsed.id);
      if (!loaded) return null;
      snapshot = loaded;
      cache.set(parsed.id, snapshot);
    }
    if (!secretMatches(snapshot.key, parsed.secret)) return null;
    if (!isUsable(snapshot.key, this.#runtime.clock.now())) {
      cache.delete(parsed.id);
      return null;
    }
    return snapshot.viewer;
  }

  async #loadSnapshot(em: EntityManager, id: string): Promise<KeySnapshot | null> {
    const runtime = this.#runtime;
    const key = await findApiKey(em, id);
    const now = new Date(runtime.clock.now());
    if (!key || !isUsable(key, now.getTime())) return null;
    const user = await users.api.findUser(em, key.userId);
    if (!user || user.disabled) return null;
    let record = apiKeyRecord(key);
    if (!key.lastUsedAt || now.getTime() - key.lastUsedAt.getTime() >= SNAPSHOT_TTL_MS) {
      await touchApiKey(em, key.id, now);
      record = { ...record, lastUsedAt: now };
    }
    const userScopes = roles.api.scopesOf(runtime.settings, user.roles);
    const admin = userScopes.has(roles.api.ADMIN);
    // The key's scopes, narrowed to what the user still has: as scopes for the rules that name
    // them, and as what the key may act on under the rules `authenticated` and `owner`.
    const scopes = new Set(key.scopes.filter((scope) => admin || userScopes.has(scope)));
    const keyScopes = new Set(key.scopes.filter((scope) => roles.api.mayGrant(runtime, userScopes, scope)));
    return {
      key: record,
      user: users.api.userRecord(user),
      viewer: Object.freeze({ userId: user.id, scopes, sessionId: null, apiKeyId: key.id, keyScopes }),
    };
  }

  /** The cached snapshot behind the request's key. */
  currentKey(viewer: Viewer): KeySnapshot | undefined {
    return viewer.apiKeyId ? this.#cache.get(viewer.apiKeyId) : undefined;
  }

  /** Which of these keys have stopped working, and why: a batched check for what outlives a request. */
  async endedKeys(ids: Iterable<string>): Promise<Map<string, CredentialEnd>> {
    const runtime = this.#runtime;
    const ended = new Map<string, CredentialEnd>();
    const em = runtime.db.system.em.fork();
    const now = runtime.clock.now();
    for (const batch of inBatches(ids)) {
      const keys = new Map((await em.find(ApiKey, { id: { $in: batch } })).map((key) => [key.id, key]));
      for (const id of batch) {
        const key = keys.get(id);
        if (key && isUsable(key, now)) continue;
        ended.set(
          id,
          key?.revokedAt
            ? { reason: key.revokedReason ?? 'REVOKED', at: key.revokedAt.toISOString() }
            : { reason: key ? 'EXPIRED' : 'REVOKED', at: new Date(now).toISOString() },
        );
      }
    }
    return ended;
  }

  /**
   * Ends the open streams of keys that stop working: at once on a revocation event, and through
   * the periodic batched re-check (lost events, expiry). Returns the stop function.
   */
  #watchLiveKeys() {
    const runtime = this.#runtime;
    return runtime.live.watch('apiKey', {
      announced: (end) =>
        runtime.pubsub.on('apiKey.revoked', ({ apiKeyId, reason, at }) => end(apiKeyId, { reason, at })),
      recheckMs: runtime.settings.session.recheckSeconds * 1000,
      findEnded: (ids) => this.endedKeys(ids),
    });
  }

  /** Revokes keys, evicts them at once, and announces each revocation. */
  async revokeKeys(em: EntityManager, where: FilterQuery<ApiKey>, reason: string): Promise<string[]> {
    const at = new Date().toISOString();
    const revoked = await revokeApiKeys(em, where, reason);
    for (const { id, userId } of revoked) {
      this.#cache.delete(id);
      this.#runtime.pubsub.publish('apiKey.revoked', { apiKeyId: id, userId, reason, at });
    }
    return revoked.map(({ id }) => id);
  }
}
