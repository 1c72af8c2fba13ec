import { PorticoError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { StoreAbout, StoreBackend } from './backend.ts';
import { noEvents, StoreEventHub } from './events.ts';

/** A backend this gateway opened, and how to close it. */
export interface OpenedStore {
  readonly backend: StoreBackend;
  close(): Promise<void>;
}

interface Entry extends OpenedStore {
  calls: number;
  retired: boolean;
}

type Part = 'documents' | 'blobs' | 'leases';

/**
 * The store as modules see it (`runtime.store`): the current backend, which an admin may replace
 * while the gateway runs (`StoreSwitch`). Each call runs on the backend that is current when it
 * begins; a replaced backend closes once its last call has ended. Listeners of `events` hear
 * whichever backend is current.
 */
export class SwitchingStore implements StoreBackend {
  #current: Entry;
  readonly #log: Logger;
  readonly #fenceRejections: { inc(): void } | undefined;
  readonly events: StoreEventHub;
  readonly documents: StoreBackend['documents'];
  readonly blobs: StoreBackend['blobs'];
  readonly leases: StoreBackend['leases'];

  /** `fenceRejections` counts the calls refused with FENCE_REJECTED, whichever module made them. */
  constructor(initial: OpenedStore, log: Logger, fenceRejections?: { inc(): void }) {
    this.#current = { ...initial, calls: 0, retired: false };
    this.#log = log;
    this.#fenceRejections = fenceRejections;
    this.events = new StoreEventHub(initial.backend.events, log);
    this.documents = this.#forward('documents');
    this.blobs = this.#forward('blobs');
    this.leases = this.#forward('leases');
  }

  get about(): StoreAbout {
    return this.#current.backend.about;
  }

  get bytes() {
    return this.#current.backend.bytes;
  }

  get archive() {
    return this.#current.backend.archive;
  }

  problem(): Promise<string | null> {
    return this.#current.backend.problem();
  }

  /** Makes `next` current; calls already running finish on the replaced backend, which then closes. */
  replace(next: OpenedStore): void {
    const replaced = this.#current;
    this.#current = { ...next, calls: 0, retired: false };
    this.events.follow(next.backend.events);
    replaced.retired = true;
    if (replaced.calls === 0) this.#close(replaced);
  }

  /** Closes the current backend (the gateway is stopping: no call runs any more). */
  async close(): Promise<void> {
    this.events.close();
    await this.#current.close();
  }

  #close(entry: Entry) {
    entry
      .close()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'closing a replaced store failed'));
  }

  /** Each method of `part` runs on the backend current when it is called. */
  #forward<P extends Part>(part: P): StoreBackend[P] {
    const call = async (method: string, args: unknown[]) => {
      const entry = this.#current;
      entry.calls++;
      try {
        const methods = entry.backend[part] as unknown as Record<string, (...args: unknown[]) => unknown>;
        return await methods[method]!(...args);
      } catch (error) {
        if (error instanceof PorticoError && error.code === 'FENCE_REJECTED') this.#fenceRejections?.inc();
        throw error;
      } finally {
        entry.calls--;
        if (entry.retired && entry.calls === 0) this.#close(entry);
      }
    };
    // One forwarder per method, made on first use: calls on the hot path allocate none.
    const forwarders = new Map<string, (...args: unknown[]) => Promise<unknown>>();
    return new Proxy({} as StoreBackend[P], {
      get: (_target, method) => {
        if (typeof method !== 'string') return undefined;
        let forward = forwarders.get(method);
        if (!forward) {
          forward = (...args: unknown[]) => call(method, args);
          forwarders.set(method, forward);
        }
        return forward;
      },
    });
  }
}

/** Changes the store of a running gateway (`runtime.storeSwitch`); the modules' data is not copied. */
export interface StoreSwitch {
  /** The URL an admin chose that is current here; null while DATABASE_URL's store is. */
  readonly chosen: string | null;
  /**
   * Opens the backend at `url` (null: DATABASE_URL's), brings its schema up to date, checks that it
   * answers and builds the modules' indexes on it, and only then makes it current here. Throws
   * (BAD_USER_INPUT, SERVICE_UNAVAILABLE) and changes nothing when any of that fails.
   */
  to(url: string | null): Promise<StoreAbout>;
  /** Opens the current backend's database anew and moves to those connections; the old ones close. */
  reconnect(): Promise<StoreAbout>;
  /**
   * Makes the store at `url` current though it cannot be opened now (a restart applying an admin's
   * choice): every store operation answers SERVICE_UNAVAILABLE, and `problem()` says `reason`,
   * until `to(url)` succeeds. Serving another store's data meanwhile would mix two stores.
   */
  unreachable(url: string, reason: string): StoreAbout;
}

export interface StoreSwitchOptions {
  store: SwitchingStore;
  /** DATABASE_URL's backend: kept open for a reset (the databases close it at shutdown). */
  initial: OpenedStore;
  databaseUrl: string;
  open(url: string, source: StoreAbout['source']): Promise<OpenedStore>;
  /** The modules' `prepareStore` (index builds) on a backend before it serves. */
  prepare(backend: StoreBackend): Promise<void>;
  /** Says why a backend that opened does not answer, as the refusal to switch. */
  unavailable(reason: string): Error;
  /** What admins see of a URL: its kind, and the URL without a password. */
  describe(url: string): Pick<StoreAbout, 'kind' | 'url'>;
}

export function createStoreSwitch(options: StoreSwitchOptions): StoreSwitch {
  const { store, initial } = options;
  /** The URL an admin chose; null while DATABASE_URL's backend is current. */
  let chosen: string | null = null;
  // One change at a time: a second waits for the first, then applies on top of it.
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(change: () => Promise<T>): Promise<T> => {
    const run = queue.then(change);
    queue = run.catch(() => {});
    return run;
  };
  const openChecked = async (url: string, source: StoreAbout['source']) => {
    const opened = await options.open(url, source);
    try {
      const problem = await opened.backend.problem();
      if (problem !== null) throw options.unavailable(problem);
      await options.prepare(opened.backend);
      return opened;
    } catch (error) {
      await opened.close();
      throw error;
    }
  };
  return {
    get chosen() {
      return chosen;
    },
    to: (url) =>
      serially(async () => {
        store.replace(url === null ? initial : await openChecked(url, 'switch'));
        chosen = url;
        return store.about;
      }),
    reconnect: () =>
      serially(async () => {
        store.replace(await openChecked(chosen ?? options.databaseUrl, chosen ? 'switch' : 'environment'));
        return store.about;
      }),
    unreachable(url, reason) {
      const about: StoreAbout = { ...options.describe(url), source: 'switch', since: new Date() };
      store.replace({
        backend: refusingBackend(about, reason, options.unavailable),
        close: async () => {},
      });
      chosen = url;
      return about;
    },
  };
}

/** A backend that answers every operation with `unavailable(reason)`. */
function refusingBackend(
  about: StoreAbout,
  reason: string,
  unavailable: (reason: string) => Error,
): StoreBackend {
  const refusing = <P extends Part>() =>
    new Proxy({} as StoreBackend[P], {
      get: () => async () => {
        throw unavailable(reason);
      },
    });
  const refuse = async (): Promise<never> => {
    throw unavailable(reason);
  };
  return {
    about,
    problem: async () => reason,
    documents: refusing<'documents'>(),
    blobs: refusing<'blobs'>(),
    leases: refusing<'leases'>(),
    events: noEvents,
    bytes: null,
    archive: {
      export: () => ({
        [Symbol.asyncIterator]: () => ({
          next: async () => {
            throw unavailable(reason);
          },
        }),
      }),
      shapes: refuse,
      isEmpty: refuse,
      clear: refuse,
      load: refuse,
      loaded: refuse,
    },
  };
}
