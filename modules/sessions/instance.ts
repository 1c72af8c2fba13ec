import type { EntityManager, FilterQuery } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';
import {
  anonymousViewer,
  type CredentialEnd,
  every,
  inBatches,
  type ModuleInstance,
  PorticoError,
  type RequestContext,
  type Runtime,
  type SealPasswords,
  sameDigest,
  sealPasswords,
  sha256,
  type Viewer,
} from '../../src/index.ts';
import roles from '../roles/index.ts';
import users from '../users/index.ts';
import { SessionCache, type SessionSnapshot } from './cache.ts';
import type { SessionSettings } from './config.ts';
import {
  clearedSessionCookie,
  readSessionCookie,
  sealCredential,
  sessionCookie,
  unsealCredential,
} from './cookie.ts';
import type { RevocationReason, Session } from './entities.ts';
import { SignInMethods } from './methods.ts';
import {
  BOOTSTRAPPED,
  createSession,
  endedBy,
  findSession,
  hasFlag,
  isActive,
  issueToken,
  loadSessions,
  type Revoked,
  revokeSessions,
  type SessionRecord,
  sessionRecord,
  touchSessions,
} from './service.ts';

declare module '../../src/pubsub.ts' {
  interface Topics {
    /** A session started (a login). */
    'session.created': { sessionId: string; userId: string; at: string };
    /** A session ended before its time, or was found expired. */
    'session.revoked': { sessionId: string; userId: string; reason: RevocationReason; at: string };
  }
}

/**
 * How often a session's lastSeenAt is written (docs/security.md): not on every request, at most once
 * per a quarter of the idle timeout (at most a minute). A use inside that window is not lost: the
 * instance that saw it counts it at once, and writes it when the window ends (`writeDueUses`), so
 * the others see it well within the idle timeout.
 */
const touchIntervalMs = (settings: SessionSettings) =>
  Math.min(60_000, (settings.idleTimeoutMinutes * 60_000) / 4);

/** The session as this instance knows it, its newest use included, is within both timeouts. */
const isInUse = (cache: SessionCache, session: SessionRecord, settings: SessionSettings, now: number) =>
  isActive({ ...session, lastSeenAt: new Date(cache.lastUse(session)) }, settings, now);

/** A use at `now` of a session whose row says `session.lastSeenAt`: true when it is due to be written. */
function recordUse(cache: SessionCache, session: SessionRecord, settings: SessionSettings, now: number) {
  const dueAt = session.lastSeenAt.getTime() + touchIntervalMs(settings);
  if (now >= dueAt) return true;
  cache.deferUse(session.id, { at: now, dueAt });
  return false;
}

export const BOOTSTRAP_PURPOSE = 'bootstrap';

/**
 * The sessions module in one gateway: the credential check with its cache, revocation, sign-in,
 * the background writes of last uses and the re-check of open streams, and bootstrap.
 */
export class Sessions implements ModuleInstance {
  readonly runtime: Runtime;
  readonly cache: SessionCache;
  /** `portico_session_cache_total`: cookies answered from the cache, and those that needed the database. */
  readonly #cacheHits: { inc(): void };
  readonly #cacheMisses: { inc(): void };
  readonly #passwords: SealPasswords;
  /** Seals stop opening after the absolute timeout, whatever the row says. */
  readonly #sealTtlSeconds: number;
  #bootstrapped = false;
  #signIn: SignInMethods | undefined;
  #stops: (() => Promise<void> | void)[] = [];

  constructor(runtime: Runtime) {
    this.runtime = runtime;
    this.cache = new SessionCache(runtime.clock);
    const lookups = runtime.metrics.counter({
      name: 'portico_session_cache_total',
      help: 'Session cookies checked: from the cache (hit) or from the database (miss)',
      labelNames: ['result'] as const,
    });
    this.#cacheHits = lookups.labels('hit');
    this.#cacheMisses = lookups.labels('miss');
    this.#passwords = sealPasswords(runtime.env.secrets);
    this.#sealTtlSeconds = runtime.settings.session.absoluteTimeoutHours * 3600;
  }

  readonly credentials = (context: RequestContext) => this.#resolveViewer(context);

  /** The login methods and token purposes the modules contribute (known once every module is set up). */
  get signIn(): SignInMethods {
    this.#signIn ??= new SignInMethods(this.runtime);
    return this.#signIn;
  }

  async start() {
    const enabled = this.signIn.enabled.map((method) => method.id);
    const unavailable = this.runtime.settings.methods.filter((method) => !enabled.includes(method));
    if (unavailable.length > 0) {
      this.runtime.log.warn(
        { methods: unavailable },
        'login methods configured but not available in this build',
      );
    }
    const { pubsub } = this.runtime;
    const { cache } = this;
    this.#stops.push(
      pubsub.on('session.revoked', ({ sessionId }) => cache.evictSession(sessionId)),
      pubsub.on('user.changed', ({ userId }) => cache.evictUser(userId)),
      pubsub.onGap(() => cache.evictAll()),
      this.#watchLiveSessions(),
      this.#writeDueUses(),
    );
    // One link per start: the other workers of `start --workers` come up after worker 1.
    const { worker } = this.runtime.env;
    const link = worker === undefined || worker === 1 ? await this.issueBootstrapLink() : null;
    if (link)
      this.runtime.log.info({ bootstrap: true }, `No admin yet. Create the first admin here: ${link}`);
  }

  async stop() {
    for (const stop of this.#stops.splice(0)) await stop();
  }

  /**
   * The credential resolver for the session cookie. Anything wrong with the cookie
   * (garbage, tampered, expired, revoked, disabled user) makes the request anonymous.
   */
  async #resolveViewer(context: RequestContext): Promise<Viewer | null> {
    const { runtime, cache } = this;
    const sealed = readSessionCookie(context.request, runtime.settings.session);
    if (!sealed) return null;
    const knownId = cache.sessionIdOf(sealed);
    const cached = knownId ? cache.snapshot(knownId) : undefined;
    if (cached) {
      const settings = runtime.settings.session;
      const now = runtime.clock.now();
      if (isInUse(cache, cached.session, settings, now)) {
        if (!recordUse(cache, cached.session, settings, now)) {
          this.#cacheHits.inc();
          return cached.viewer;
        }
        // lastSeenAt is due: the reload below writes it (and refreshes the snapshot).
      }
      // Else the row may know a later use (another instance's): the reload below decides.
    }
    this.#cacheMisses.inc();

    let sessionId = knownId;
    let secret: string | undefined;
    if (!sessionId) {
      const credential = await unsealCredential(sealed, this.#passwords.open, this.#sealTtlSeconds);
      if (!credential) return null;
      sessionId = credential.id;
      secret = credential.secret;
    }
    const snapshot = await this.#loadSnapshot(context.db.system, sessionId, secret);
    if (!snapshot) {
      cache.forgetSeal(sealed);
      return null;
    }
    cache.rememberSeal(sealed, sessionId);
    cache.store(snapshot);
    return snapshot.viewer;
  }

  /** Loads a session and its user; verifies the secret when given (first sight of this seal). */
  async #loadSnapshot(
    em: SqlEntityManager,
    sessionId: string,
    secret?: string,
  ): Promise<SessionSnapshot | null> {
    const { runtime, cache } = this;
    const session = await findSession(em, sessionId);
    if (!session) return null;
    if (secret !== undefined && !sameDigest(sha256(secret), session.secretHash)) return null;
    if (session.revokedAt) return null;
    const settings = runtime.settings.session;
    const now = runtime.clock.now();
    if (!isInUse(cache, session, settings, now)) {
      const where = { $and: [{ id: session.id }, endedBy(settings, now)] };
      await this.revoke(em, where, 'EXPIRED');
      return null;
    }
    const user = await users.api.findUser(em, session.userId);
    if (!user || user.disabled) return null;

    let record = sessionRecord(session);
    if (recordUse(cache, session, settings, now)) {
      await touchSessions(em, [[session.id, now]]);
      record = { ...record, lastSeenAt: new Date(now) };
      cache.written(session.id, now);
    }
    return {
      session: record,
      user: users.api.userRecord(user),
      viewer: Object.freeze({
        userId: user.id,
        scopes: roles.api.scopesOf(runtime.settings, user.roles),
        sessionId: session.id,
        apiKeyId: null,
        keyScopes: null,
      }),
    };
  }

  /** The cached snapshot behind the viewer's session, if it has one. */
  currentSnapshot(viewer: Viewer): SessionSnapshot | undefined {
    return viewer.sessionId ? this.cache.snapshot(viewer.sessionId) : undefined;
  }

  /**
   * Writes the uses that were not written at once when their quarter window has ended, in
   * batches, from one timer per instance; when stopped, all that are left (shutdown).
   * Returns the stop function.
   */
  #writeDueUses(): () => Promise<void> {
    const timer = every(touchIntervalMs(this.runtime.settings.session), () =>
      this.#writeUses(this.runtime.clock.now()),
    );
    return async () => {
      await timer.stop();
      await this.#writeUses(Number.POSITIVE_INFINITY);
    };
  }

  async #writeUses(dueBy: number) {
    const { cache } = this;
    const uses = cache.takeUnwritten(dueBy);
    const em = this.runtime.db.system.em.fork();
    for (const batch of inBatches(uses.keys(), 500)) {
      const touched = batch.map((id) => [id, uses.get(id)!.at] as const);
      try {
        await touchSessions(em, touched);
        for (const [id, at] of touched) cache.written(id, at);
      } catch (error) {
        for (const id of batch) cache.deferUse(id, uses.get(id)!);
        this.runtime.log.warn(
          { err: error },
          'writing the last uses of sessions failed; retried on the next round',
        );
      }
    }
  }

  /**
   * Which of these sessions have ended, and why: a batched check for whatever outlives a request
   * on a session's behalf (open streams, leases, signed URLs). Sessions found past a timeout are
   * revoked as EXPIRED, which announces them like any revocation.
   */
  async endedSessions(ids: Iterable<string>): Promise<Map<string, CredentialEnd>> {
    const { runtime, cache } = this;
    const ended = new Map<string, CredentialEnd>();
    const em = runtime.db.system.em.fork();
    const now = runtime.clock.now();
    const settings = runtime.settings.session;
    const expired: string[] = [];
    for (const batch of inBatches(ids)) {
      const sessions = await loadSessions(em, batch);
      batch.forEach((id, i) => {
        const session = sessions[i];
        if (!session) {
          ended.set(id, { reason: 'REVOKED', at: new Date(now).toISOString() });
        } else if (session.revokedAt) {
          ended.set(id, { reason: session.revokedReason ?? 'REVOKED', at: session.revokedAt.toISOString() });
        } else if (!isInUse(cache, session, settings, now)) {
          expired.push(id);
        }
      });
    }
    for (const batch of inBatches(expired)) {
      const where = { $and: [{ id: { $in: batch } }, endedBy(settings, now)] };
      const revoked = await this.revoke(em, where, 'EXPIRED');
      for (const { id } of revoked) ended.set(id, { reason: 'EXPIRED', at: new Date(now).toISOString() });
    }
    return ended;
  }

  /**
   * Ends the open streams of sessions that end: at once on a revocation event (from any
   * instance), and through the periodic batched re-check, which catches lost events and
   * timeouts. Returns the stop function.
   */
  #watchLiveSessions() {
    const { runtime } = this;
    return runtime.live.watch('session', {
      announced: (end) =>
        runtime.pubsub.on('session.revoked', ({ sessionId, reason, at }) => end(sessionId, { reason, at })),
      recheckMs: runtime.settings.session.recheckSeconds * 1000,
      findEnded: (ids) => this.endedSessions(ids),
    });
  }

  /** Revokes sessions, evicts them from the cache at once, and announces each revocation. */
  async revoke(em: EntityManager, where: FilterQuery<Session>, reason: RevocationReason): Promise<Revoked[]> {
    const { runtime, cache } = this;
    const at = new Date(runtime.clock.now());
    const revoked = await revokeSessions(em, where, reason, at);
    for (const { id, userId } of revoked) {
      cache.evictSession(id);
      runtime.pubsub.publish('session.revoked', { sessionId: id, userId, reason, at: at.toISOString() });
    }
    return revoked;
  }

  /**
   * Signs the user in with a new session (the request's previous one is revoked),
   * sets the cookie, and records the login time.
   */
  async startSession(context: RequestContext, userId: string, method: string) {
    const { runtime, db, viewer, request } = context;
    const settings = runtime.settings.session;
    if (viewer.sessionId) await this.revoke(db.system, { id: viewer.sessionId }, 'LOGOUT');
    const user = await users.api.findUser(db.system, userId);
    if (!user) throw new PorticoError('NOT_FOUND', 'No such user.');
    const { session, credential } = createSession(
      db.system,
      { userId, method, ip: context.ip, userAgent: request.headers.get('user-agent') },
      settings,
      new Date(runtime.clock.now()),
    );
    user.lastLoginAt = session.createdAt;
    await db.system.flush();
    runtime.pubsub.publish('session.created', {
      sessionId: session.id,
      userId,
      at: session.createdAt.toISOString(),
    });
    const sealed = await sealCredential(credential, this.#passwords.seal, this.#sealTtlSeconds);
    context.response.setCookie(sessionCookie(sealed, settings));
    context.setViewer({
      userId: user.id,
      scopes: roles.api.scopesOf(runtime.settings, user.roles),
      sessionId: session.id,
      apiKeyId: null,
      keyScopes: null,
    });
    return { user, session };
  }

  /** True until the first admin exists; once false it stays false (checked in the database once). */
  async needsBootstrap(em: EntityManager): Promise<boolean> {
    if (this.#bootstrapped) return false;
    this.#bootstrapped = (await hasFlag(em, BOOTSTRAPPED)) || (await users.api.adminExists(em));
    return !this.#bootstrapped;
  }

  /** Issues a bootstrap token and returns its redeem link, or null when bootstrap is closed. */
  async issueBootstrapLink(): Promise<string | null> {
    const { runtime } = this;
    const em = runtime.db.system.em.fork();
    if (!(await this.needsBootstrap(em))) return null;
    const { token } = await issueToken(
      em,
      { purpose: BOOTSTRAP_PURPOSE, ttlSeconds: null },
      new Date(runtime.clock.now()),
    );
    return `${runtime.env.publicUrl}/auth/redeem?token=${token}`;
  }

  markBootstrapped() {
    this.#bootstrapped = true;
  }
}

/** Clears the cookie; the rest of the request is anonymous. */
export function signOut(context: RequestContext) {
  context.response.setCookie(clearedSessionCookie(context.runtime.settings.session));
  context.setViewer(anonymousViewer);
}
