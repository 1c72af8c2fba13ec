/**
 * Event topics and their payloads. Modules add theirs by interface merging.
 * One topic per event kind; subscribers filter in process.
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by modules
export interface Topics {}

export type TopicName = keyof Topics & string;

/**
 * Events between the parts of a gateway and, through a broker, between the instances of a
 * deployment. Delivery is at most once: an event can be lost (a broker connection down, a send
 * that failed), never duplicated. An instance's own events reach its listeners at once, during
 * `publish`; other instances' events come in each publisher's order.
 */
export interface PubSub {
  /**
   * Fire and forget: never throws or waits; failures are logged. A payload must be plain JSON
   * of a few kilobytes at most (ids, not documents): the broker adapters refuse one whose message
   * is over `MAX_MESSAGE_BYTES` (logged), for local listeners too.
   */
  publish<T extends TopicName>(topic: T, payload: Topics[T]): void;
  /**
   * For GraphQL subscriptions: the topic's events from this call on, as an async iterator;
   * `return()` (ending the `for await`) stops it. It holds up to a thousand unread events.
   */
  subscribe<T extends TopicName>(topic: T): AsyncIterable<Topics[T]>;
  /** For in-process listeners (cache invalidation): returns the unsubscribe function. */
  on<T extends TopicName>(topic: T, listener: (payload: Topics[T]) => void): () => void;
  /**
   * Called when this instance may have missed other instances' events: its broker connection
   * dropped and was made anew (the listener runs once it listens again). Whoever keeps state
   * from events (caches) should drop or re-check it. Returns the function that removes it.
   */
  onGap(listener: () => void): () => void;
  /**
   * `on` and `subscribe` start listening to their topic on the broker without waiting for it.
   * This resolves once every topic asked for so far is listened to: from then on, other
   * instances' events on those topics arrive (barring a gap). Await it after `subscribe` when
   * an event published right after must not be missed; the gateway awaits it after starting
   * the modules, before it accepts requests.
   */
  ready(): Promise<void>;
  /** Ends subscriptions and broker connections; events already published are sent first. */
  close(): Promise<void>;
}

/**
 * Largest message (the JSON envelope of topic, origin and payload) in bytes: PostgreSQL refuses
 * NOTIFY payloads of 8000 bytes or more. Redis has the same limit, so a topic works on every adapter.
 */
export const MAX_MESSAGE_BYTES = 7999;
