import type { PubSub } from '../pubsub.ts';
import type { DocumentChange, StoredDocument, StoreEventPayloads, StoreEvents } from './backend.ts';

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
