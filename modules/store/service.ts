import { randomBytes } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/core';
import { sealData, unsealData } from 'iron-session';
import { type DocumentChange, type Environment, type StoreEvents, sealPasswords } from '../../src/index.ts';
import { StoreChoice } from './entities.ts';

const NAME = 'store';

/** The URL an admin chose, unsealed; null when none stands (DATABASE_URL's store). */
export async function readChoice(
  em: EntityManager,
  env: Pick<Environment, 'secrets'>,
): Promise<string | null> {
  const row = await em.findOne(StoreChoice, { name: NAME });
  if (!row) return null;
  // Any of the secrets opens it, so that PORTICO_SECRET can rotate.
  const { url } = await unsealData<{ url?: string }>(row.sealedUrl, {
    password: sealPasswords(env.secrets).open,
    ttl: 0,
  });
  if (typeof url !== 'string') throw new Error('The chosen store cannot be read: PORTICO_SECRET has changed');
  return url;
}

/** Keeps `url` as the store of every instance (null: back to DATABASE_URL's). */
export async function saveChoice(em: EntityManager, env: Pick<Environment, 'secrets'>, url: string | null) {
  if (url === null) {
    await em.nativeDelete(StoreChoice, { name: NAME });
    return;
  }
  const sealedUrl = await sealData({ url }, { password: sealPasswords(env.secrets).seal, ttl: 0 });
  await em.upsert(StoreChoice, { name: NAME, sealedUrl, chosenAt: new Date() });
}

/** An event of this gateway's store, numbered for the event stream of the store protocol. */
export type JournalEntry =
  | { kind: 'document.changed'; event: DocumentChange; seq: string }
  | { kind: 'lease.released'; event: { key: string }; seq: string };

/** How many recent events a reconnecting gateway can catch up on. */
const JOURNAL_SIZE = 10_000;

/**
 * The store's recent change events, numbered `<epoch>.<n>` (the epoch changes with each start), so
 * that a gateway whose event stream dropped gets what it missed when it comes back (`follow`),
 * rather than a gap, as long as this instance still holds it.
 */
export class EventJournal {
  #epoch = randomBytes(6).toString('hex');
  readonly #entries: JournalEntry[] = [];
  readonly #followers = new Set<(entry: JournalEntry | { kind: 'gap' }) => void>();
  #next = 1;

  /** Records the store's events from now on; returns the function that stops. */
  listen(events: StoreEvents): () => void {
    const offChanged = events.on('document.changed', (event) =>
      this.#record({ kind: 'document.changed', event }),
    );
    const offReleased = events.on('lease.released', (event) =>
      this.#record({ kind: 'lease.released', event }),
    );
    const offGap = events.onGap(() => this.#gap());
    return () => {
      offChanged();
      offReleased();
      offGap();
    };
  }

  /**
   * Calls `listener` with every event from now on; `missed` is what followed the event `after`
   * (everything held, when null), or null when that is no longer known (another epoch, or too old).
   */
  follow(after: string | null, listener: (entry: JournalEntry | { kind: 'gap' }) => void) {
    this.#followers.add(listener);
    const unsubscribe = () => this.#followers.delete(listener);
    if (after === null) return { missed: [] as JournalEntry[], unsubscribe };
    const [epoch, number] = after.split('.');
    const last = Number(number);
    const oldest = this.#next - this.#entries.length;
    if (epoch !== this.#epoch || !Number.isSafeInteger(last) || last < oldest - 1 || last >= this.#next) {
      return { missed: null, unsubscribe };
    }
    return { missed: this.#entries.slice(last + 1 - oldest), unsubscribe };
  }

  /**
   * This store may have missed events (its pub/sub reconnected, or an admin switched it): so may
   * every gateway that follows it. A new epoch makes a later `after` from before it a gap too.
   */
  #gap() {
    this.#epoch = randomBytes(6).toString('hex');
    this.#entries.length = 0;
    for (const follower of [...this.#followers]) follower({ kind: 'gap' });
  }

  #record(entry: Omit<JournalEntry, 'seq'>) {
    const numbered = { ...entry, seq: `${this.#epoch}.${this.#next++}` } as JournalEntry;
    this.#entries.push(numbered);
    if (this.#entries.length > JOURNAL_SIZE) this.#entries.shift();
    for (const follower of [...this.#followers]) follower(numbered);
  }
}
