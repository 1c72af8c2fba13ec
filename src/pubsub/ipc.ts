import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub.ts';
import { BrokeredPubSub, type DeliveryLag, MAX_PENDING_SENDS } from './brokered.ts';

/**
 * The pub/sub between the workers of `portico start --workers`: each worker sends its events to
 * the primary over its IPC channel, and the primary relays them to every other worker (`PubSubRelay`).
 * The channel is a pipe between processes of one machine: it neither drops nor reorders, so there
 * is nothing to reconnect; a worker whose primary is gone exits (Node's cluster module does that).
 */

/** An event on its way between a worker and the primary. */
interface EventMessage {
  portico: 'pubsub';
  channel: string;
  /** The JSON envelope `BrokeredPubSub` makes. */
  message: string;
}

/** From the primary: events for this worker were dropped (it read too slowly). */
interface GapMessage {
  portico: 'pubsub-gap';
}

const isEventMessage = (value: unknown): value is EventMessage =>
  typeof value === 'object' &&
  value !== null &&
  (value as EventMessage).portico === 'pubsub' &&
  typeof (value as EventMessage).channel === 'string' &&
  typeof (value as EventMessage).message === 'string';

const isGapMessage = (value: unknown): value is GapMessage =>
  typeof value === 'object' && value !== null && (value as GapMessage).portico === 'pubsub-gap';

/** One end of an IPC channel: a worker's `process`, or the primary's `cluster.Worker`. */
export interface IpcEndpoint {
  /** Calls back once the message is written to the channel, or with the reason it was not. */
  send(message: unknown, callback: (error: Error | null) => void): unknown;
}

/** A worker's side of the channel: `process` in a worker. */
export interface WorkerChannel extends IpcEndpoint {
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface IpcPubSubOptions {
  log: Logger;
  lag?: DeliveryLag;
  /** `process` (the default) in a worker forked by the primary. */
  channel?: WorkerChannel;
}

/** The pub/sub of one worker: events go to the other workers through the primary. */
export async function openIpcPubSub({
  log,
  lag,
  channel = process as unknown as WorkerChannel,
}: IpcPubSubOptions): Promise<PubSub> {
  const onMessage = (message: unknown) => {
    if (isEventMessage(message)) pubsub.received(message.channel, message.message);
    else if (isGapMessage(message)) {
      // As after a broker reconnection: the gap listeners re-check what they keep.
      pubsub.connectionLost();
      void pubsub.connected();
    }
  };
  const pubsub: BrokeredPubSub = new BrokeredPubSub(
    { log, broker: 'the primary process', channelOf: (topic) => topic, lag },
    () => ({
      // The primary relays every event to every worker: there is nothing to ask for.
      listen: async () => {},
      ping: async () => {},
      reconnect: () => {},
      send: (name, message) =>
        new Promise<void>((resolve, reject) => {
          channel.send({ portico: 'pubsub', channel: name, message } satisfies EventMessage, (error) =>
            error ? reject(error) : resolve(),
          );
        }),
      close: async () => {
        channel.off('message', onMessage);
      },
    }),
  );
  channel.on('message', onMessage);
  await pubsub.connected();
  return pubsub;
}

/** What the relay knows of a worker. */
interface Peer {
  /** Messages handed to its channel and not yet written. */
  pending: number;
  /** Events dropped for it since its last gap message. */
  dropped: number;
}

/**
 * The primary's half: every event one worker sends goes to every other connected worker, in the
 * order it came (per publisher order holds). A worker that stops reading (its channel holds
 * `MAX_PENDING_SENDS` messages) misses events; once it reads again, a gap message tells it so.
 */
export class PubSubRelay {
  readonly #log: Logger;
  readonly #peers = new WeakMap<IpcEndpoint, Peer>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Relays `message` if it is a pub/sub event from `from` to each of `workers` but `from`;
   * returns whether it was one.
   */
  relay(from: IpcEndpoint, message: unknown, workers: Iterable<IpcEndpoint>): boolean {
    if (!isEventMessage(message)) return false;
    for (const worker of workers) if (worker !== from) this.#send(worker, message);
    return true;
  }

  #send(worker: IpcEndpoint, message: EventMessage) {
    let peer = this.#peers.get(worker);
    if (!peer) {
      peer = { pending: 0, dropped: 0 };
      this.#peers.set(worker, peer);
    }
    const state = peer;
    if (state.pending >= MAX_PENDING_SENDS) {
      if (state.dropped++ === 0)
        this.#log.error(
          { pending: state.pending },
          'pub/sub: a worker is not reading its events; dropping them until it does (it will re-check what it caches)',
        );
      return;
    }
    state.pending++;
    worker.send(message, () => {
      state.pending--;
      // Caught up: the worker learns it missed events, after the last one it did get.
      if (state.pending === 0 && state.dropped > 0) {
        state.dropped = 0;
        worker.send({ portico: 'pubsub-gap' } satisfies GapMessage, () => {});
      }
    });
  }
}
