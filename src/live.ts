import { Repeater } from 'graphql-yoga';
import { isDatabaseUnavailable } from './errors.ts';
import type { Logger } from './logger.ts';
import { every } from './timers.ts';
import type { Viewer } from './viewer.ts';

/** Why and when a credential (session or API key) stopped being valid. */
export interface CredentialEnd {
  /** A module's reason, e.g. the sessions module's RevocationReason. */
  readonly reason: string;
  /** ISO-8601. */
  readonly at: string;
}

/** The kinds of credential a viewer can hold; a live stream is tracked under one of them. */
export type CredentialKind = 'session' | 'apiKey';

export interface Credential {
  readonly kind: CredentialKind;
  readonly id: string;
}

/** The credential behind a viewer, if it has one (anonymous viewers have none). */
export function credentialOf(viewer: Viewer): Credential | null {
  if (viewer.sessionId) return { kind: 'session', id: viewer.sessionId };
  if (viewer.apiKeyId) return { kind: 'apiKey', id: viewer.apiKeyId };
  return null;
}

type EndListener = (end: CredentialEnd) => void;

/** Of these credential ids, the ones that have ended, with why. */
export type EndedFinder = (ids: string[]) => Promise<Map<string, CredentialEnd>>;

export interface CredentialWatch {
  /** Listens to the owner's end-of-credential events; returns the function that stops listening. */
  announced: (end: (id: string, why: CredentialEnd) => void) => () => void;
  /** How often the tracked credentials are looked up; 0 turns the re-check off. */
  recheckMs: number;
  findEnded: EndedFinder;
}

/**
 * The credentials behind this instance's long-lived streams (subscriptions over SSE or
 * WebSocket). The modules that own a kind of credential report its end here: from their
 * pub/sub events (fast, at-most-once) and from a periodic batched re-check of `tracked(kind)`
 * (the guarantee). Every stream of an ended credential is then ended by the gateway.
 */
export class LiveCredentials {
  readonly #listeners = new Map<string, Set<EndListener>>();
  readonly #rechecks = new Set<() => Promise<void>>();
  readonly #finders = new Map<CredentialKind, EndedFinder>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Calls `onEnd` once when the credential ends; returns the disposer. */
  track(credential: Credential, onEnd: EndListener): () => void {
    const key = keyOf(credential);
    let listeners = this.#listeners.get(key);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(key, listeners);
    }
    listeners.add(onEnd);
    return () => {
      const current = this.#listeners.get(key);
      if (!current?.delete(onEnd)) return;
      if (current.size === 0) this.#listeners.delete(key);
    };
  }

  /** The first end of the credential, as a stream of one value (ends early when returned). */
  ended(credential: Credential): AsyncIterableIterator<CredentialEnd> {
    return new Repeater<CredentialEnd>(async (push, stop) => {
      const untrack = this.track(credential, (end) => {
        push(end);
        stop();
      });
      await stop;
      untrack();
    });
  }

  /** Reports the end of a credential: every stream that holds it is told, in the order it started. */
  end(credential: Credential, end: CredentialEnd): void {
    const key = keyOf(credential);
    const listeners = this.#listeners.get(key);
    if (!listeners) return;
    this.#listeners.delete(key);
    for (const listener of listeners) listener(end);
  }

  /** The ids of one kind of credential that have live streams here, for the batched re-check. */
  tracked(kind: CredentialKind): string[] {
    const prefix = `${kind}:`;
    const ids: string[] = [];
    for (const key of this.#listeners.keys()) if (key.startsWith(prefix)) ids.push(key.slice(prefix.length));
    return ids;
  }

  /**
   * How the module that owns a kind of credential reports ends: at once from its `announced`
   * events (any instance's, through the pub/sub), and every `recheckMs` (0: never) by asking
   * `findEnded` which tracked credentials have ended, in one batched lookup for all of them.
   * Returns the stop function, which resolves once a re-check in progress is over.
   */
  watch(kind: CredentialKind, { announced, recheckMs, findEnded }: CredentialWatch): () => Promise<void> {
    const unlisten = announced((id, end) => this.end({ kind, id }, end));
    this.#finders.set(kind, findEnded);
    const forget = () => {
      unlisten();
      if (this.#finders.get(kind) === findEnded) this.#finders.delete(kind);
    };
    if (recheckMs <= 0) return async () => forget();
    const recheck = every(recheckMs, async () => {
      const ids = this.tracked(kind);
      if (ids.length === 0) return;
      try {
        for (const [id, end] of await findEnded(ids)) this.end({ kind, id }, end);
      } catch (error) {
        // An outage is logged once, by the database (src/outages.ts), not by every re-check.
        if (!isDatabaseUnavailable(error)) {
          this.#log.warn(
            { err: error, kind },
            `re-check of the ${kind} credentials behind open streams failed`,
          );
        }
      }
    });
    this.#rechecks.add(recheck.run);
    return async () => {
      forget();
      this.#rechecks.delete(recheck.run);
      await recheck.stop();
    };
  }

  /**
   * Which of these credentials of one kind have ended, and why, asked of the module that owns the
   * kind (its `watch`): for what outlives a request on a credential's behalf (leases, signed URLs).
   * None, when no module of this gateway issues that kind.
   */
  async findEnded(kind: CredentialKind, ids: string[]): Promise<Map<string, CredentialEnd>> {
    const finder = this.#finders.get(kind);
    return finder && ids.length > 0 ? finder(ids) : new Map();
  }

  /** Re-checks at once (the pub/sub may have lost events); resolves when the checks are done. */
  async recheckNow(): Promise<void> {
    await Promise.all([...this.#rechecks].map((run) => run()));
  }

  /** How many credentials have live streams here (metrics, tests). */
  get size(): number {
    return this.#listeners.size;
  }
}

const keyOf = (credential: Credential) => `${credential.kind}:${credential.id}`;
