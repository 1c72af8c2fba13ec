import { createPubSub } from 'graphql-yoga';

/**
 * Event topics and their payloads. Modules add theirs by interface merging.
 * One topic per event kind; subscribers filter in process.
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by modules
export interface Topics {}

type TopicName = keyof Topics & string;

export interface PubSub {
  publish<T extends TopicName>(topic: T, payload: Topics[T]): void;
  /** For GraphQL subscriptions: an async iterator of the topic's events. */
  subscribe<T extends TopicName>(topic: T): AsyncIterable<Topics[T]>;
  /** For in-process listeners (cache invalidation): returns the unsubscribe function. */
  on<T extends TopicName>(topic: T, listener: (payload: Topics[T]) => void): () => void;
}

/** The in-process adapter: one gateway instance. */
export function createLocalPubSub(): PubSub {
  const target = new EventTarget();
  // Yoga's pub/sub gives subscriptions their buffering and clean-up; it shares the target with `on`.
  const yogaPubSub = createPubSub<Record<string, [unknown]>>({ eventTarget: target as never });
  return {
    publish(topic, payload) {
      yogaPubSub.publish(topic, payload);
    },
    subscribe(topic) {
      return yogaPubSub.subscribe(topic) as AsyncIterable<Topics[typeof topic]>;
    },
    on(topic, listener) {
      const handler = (event: Event) => listener((event as CustomEvent).detail);
      target.addEventListener(topic, handler);
      return () => target.removeEventListener(topic, handler);
    },
  };
}
