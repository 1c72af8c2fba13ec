import type { Logger } from '../logger.ts';
import { Fanout } from '../pubsub/fanout.ts';
import type { PubSub } from '../pubsub.ts';
import type {
  DocumentChange,
  StoredDocument,
  StoreEventName,
  StoreEventPayloads,
  StoreEvents,
} from './backend.ts';

declare module '../pubsub.ts' {
  interface Topics {
    /** A store's document changed (see StoreEvents): ids only, pub/sub messages stay small. */
    'document.changed': StoreEventPayloads['document.changed'];
    /** A store's lease ended before its expiry (see StoreEvents). */
    'lease.released': StoreEventPayloads['lease.released'];
  }
}

/**
 * The events of a store whose only writers are this deployment's instances (the SQL backend):
 * they travel on the gateway's pub/sub, which those instances share.
 */
export const pubSubEvents = (pubsub: PubSub): StoreEvents => ({
  on: (kind, listener) => pubsub.on(kind, listener),
  subscribe: (kind) => pubsub.subscribe(kind),
  onGap: (listener) => pubsub.onGap(listener),
  ready: () => pubsub.ready(),
});

/**
 * Raises `document.changed` for this instance's writes and finds the document behind an event:
 * the written version on this instance, the current one (read once per event) on the others.
 */
export class DocumentChanges {
  readonly #pubsub: PubSub;
  readonly #read: (collection: string, id: string) => Promise<StoredDocument | null>;
  readonly #documents = new WeakMap<DocumentChange, Promise<StoredDocument | null>>();

  constructor(pubsub: PubSub, read: (collection: string, id: string) => Promise<StoredDocument | null>) {
    this.#pubsub = pubsub;
    this.#read = read;
  }

  announce(kind: DocumentChange['kind'], document: StoredDocument) {
    const change: DocumentChange = {
      kind,
      collection: document.collection,
      id: document.id,
      version: document.version,
      ownerId: document.ownerId,
    };
    // This instance's subscribers get the written version itself; others read it on delivery.
    this.#documents.set(change, Promise.resolve(kind === 'DELETED' ? null : document));
    this.#pubsub.publish('document.changed', change);
  }

  documentOf(change: DocumentChange): Promise<StoredDocument | null> {
    let document = this.#documents.get(change);
    if (!document) {
      document = change.kind === 'DELETED' ? Promise.resolve(null) : this.#read(change.collection, change.id);
      this.#documents.set(change, document);
    }
    return document;
  }
}

const KINDS: readonly StoreEventName[] = ['document.changed', 'lease.released'];

/**
 * The events of whichever backend is current (`runtime.store.events`): listeners stay registered
 * here while the backend underneath changes. A change of backend is a gap: the new one's state is
 * not what the old one's events described.
 */
export class StoreEventHub implements StoreEvents {
  readonly #fanout: Fanout;
  readonly #gapListeners = new Set<() => void>();
  #source: StoreEvents;
  #detach: (() => void)[] = [];

  constructor(source: StoreEvents, log: Logger) {
    this.#fanout = new Fanout(log);
    this.#source = source;
    this.#attach();
  }

  /** Delivers `source`'s events from now on, and reports a gap. */
  follow(source: StoreEvents): void {
    if (source === this.#source) return;
    for (const detach of this.#detach.splice(0)) detach();
    this.#source = source;
    this.#attach();
    this.#gap();
  }

  on<K extends StoreEventName>(kind: K, listener: (event: StoreEventPayloads[K]) => void) {
    return this.#fanout.add(kind, listener as (payload: unknown) => void);
  }

  subscribe<K extends StoreEventName>(kind: K): AsyncIterable<StoreEventPayloads[K]> {
    return this.#fanout.iterate(kind) as AsyncIterable<StoreEventPayloads[K]>;
  }

  onGap(listener: () => void): () => void {
    this.#gapListeners.add(listener);
    return () => this.#gapListeners.delete(listener);
  }

  ready(): Promise<void> {
    return this.#source.ready();
  }

  close(): void {
    for (const detach of this.#detach.splice(0)) detach();
    this.#fanout.close();
  }

  #attach() {
    for (const kind of KINDS) {
      this.#detach.push(this.#source.on(kind, (event) => this.#fanout.deliver(kind, event)));
    }
    this.#detach.push(this.#source.onGap(() => this.#gap()));
  }

  #gap() {
    for (const listener of [...this.#gapListeners]) listener();
  }
}

/** The events of a backend that has none (one refusing every call). */
export const noEvents: StoreEvents = {
  on: () => () => {},
  subscribe: () => ({
    [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }),
  }),
  onGap: () => () => {},
  ready: async () => {},
};
