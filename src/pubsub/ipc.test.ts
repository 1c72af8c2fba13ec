import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { eventually } from '../../test/harness.ts';
import { brokerContract, captureLog, recordAll } from '../../test/pubsub.ts';
import type { PubSub } from '../pubsub.ts';
import { MAX_PENDING_SENDS } from './brokered.ts';
import { type IpcEndpoint, openIpcPubSub, PubSubRelay, type WorkerChannel } from './ipc.ts';

/**
 * A primary and its workers' IPC channels in one process: each message is copied through JSON, as
 * Node's channel does, and arrives on a later turn of the event loop, in order. A worker can stop
 * reading (`stall`): its messages wait, unwritten, until `resume`.
 */
class FakeCluster {
  readonly relay: PubSubRelay;
  readonly #workers = new Set<IpcEndpoint>();

  constructor(relay: PubSubRelay) {
    this.relay = relay;
  }

  /** A new worker's channel, and the primary's end of it. */
  connect() {
    const worker = new EventEmitter();
    let stalled: (() => void)[] | null = null;
    const primaryEnd: IpcEndpoint = {
      send: (message, callback) => {
        const deliver = () => {
          worker.emit('message', JSON.parse(JSON.stringify(message)));
          callback(null);
        };
        if (stalled) stalled.push(deliver);
        else setImmediate(deliver);
      },
    };
    this.#workers.add(primaryEnd);
    const channel: WorkerChannel = {
      send: (message, callback) => {
        setImmediate(() => {
          this.relay.relay(primaryEnd, JSON.parse(JSON.stringify(message)), this.#workers);
          callback(null);
        });
      },
      on: (event, listener) => worker.on(event, listener),
      off: (event, listener) => worker.off(event, listener),
    };
    return {
      channel,
      stall() {
        stalled = [];
      },
      resume() {
        const waiting = stalled ?? [];
        stalled = null;
        for (const deliver of waiting) setImmediate(deliver);
      },
    };
  }
}

describe('the workers’ pub/sub (IPC through the primary)', () => {
  const primaryLog = captureLog();
  const cluster = new FakeCluster(new PubSubRelay(primaryLog.log));
  const { open } = brokerContract({
    network: false,
    open: (_name, log) => openIpcPubSub({ log, channel: cluster.connect().channel }),
  });

  it('relays one worker’s events to every other worker, not back to it', async () => {
    const [a, b, c] = await Promise.all([open('a'), open('b'), open('c')]);
    const received = [a!, b!, c!].map(({ pubsub }) => recordAll(pubsub));
    b!.pubsub.publish('user.changed', { userId: 'from b' });
    await eventually(() => received[0]!.length === 1 && received[2]!.length === 1, 'a and c to hear b');
    expect(received).toEqual([
      [['user.changed', { userId: 'from b' }]],
      [['user.changed', { userId: 'from b' }]],
      [['user.changed', { userId: 'from b' }]],
    ]);
  });

  it('drops events for a worker that stops reading, and tells it of the gap once it reads again', async () => {
    const { log, lines } = captureLog();
    const relay = new FakeCluster(new PubSubRelay(log));
    const slow = relay.connect();
    const opened: PubSub[] = [];
    try {
      const reader = await openIpcPubSub({ log: captureLog().log, channel: slow.channel });
      const writer = await openIpcPubSub({ log: captureLog().log, channel: relay.connect().channel });
      opened.push(reader, writer);
      const received = recordAll(reader);
      let gaps = 0;
      reader.onGap(() => gaps++);
      slow.stall();
      // In rounds the writer's own sends keep up with: only the reader falls behind.
      for (let n = 0; n < MAX_PENDING_SENDS + 10; n++) {
        writer.publish('lease.released', { key: `k${n}` });
        if (n % 100 === 99) await new Promise(setImmediate);
      }
      await eventually(() => lines.some((line) => /not reading its events/.test(line.msg)), 'the drop');
      // Logged once however many were dropped.
      expect(lines.filter((line) => /not reading/.test(line.msg))).toHaveLength(1);
      expect(gaps).toBe(0);

      slow.resume();
      await eventually(() => gaps === 1, 'the gap');
      // The first MAX_PENDING_SENDS came, in order; the rest were lost, and the gap says so.
      expect(received.map(([, payload]) => (payload as { key: string }).key)).toEqual(
        Array.from({ length: MAX_PENDING_SENDS }, (_, n) => `k${n}`),
      );
      writer.publish('lease.released', { key: 'after' });
      await eventually(() => received.length === MAX_PENDING_SENDS + 1, 'an event after the gap');
      expect(received.at(-1)).toEqual(['lease.released', { key: 'after' }]);
      expect(gaps).toBe(1);
    } finally {
      await Promise.all(opened.map((pubsub) => pubsub.close()));
    }
  });
});
