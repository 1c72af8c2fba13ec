import type { Logger } from '../logger.ts';
import type { PubSub, Topics } from '../pubsub.ts';
import { Fanout } from './fanout.ts';

/** The in-process adapter: one gateway instance, no broker, so never a gap. */
export function createLocalPubSub(log: Logger): PubSub {
  const fanout = new Fanout(log);
  return {
    publish(topic, payload) {
      fanout.deliver(topic, payload);
    },
    subscribe(topic) {
      return fanout.iterate(topic) as AsyncIterable<Topics[typeof topic]>;
    },
    on(topic, listener) {
      return fanout.add(topic, listener as (payload: unknown) => void);
    },
    onGap: () => () => {},
    ready: async () => {},
    async close() {
      fanout.close();
    },
  };
}
