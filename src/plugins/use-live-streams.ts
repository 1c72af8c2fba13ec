import { type Plugin, Repeater } from 'graphql-yoga';
import { type Credential, credentialOf, type LiveCredentials } from '../live.ts';
import type { Viewer } from '../viewer.ts';

// sessionRevoked is told first and emits its event; the other streams end just after, so that
// event is still delivered.
const ENDING_GRACE_MS = 100;

const DONE: unique symbol = Symbol('done');

/**
 * Ends a subscription's results when its credential ends (or when the gateway closes), and
 * otherwise passes them through. Results are a Repeater so that ending never waits for the
 * source's next event.
 */
function untilEnded<T>(
  source: AsyncIterable<T>,
  live: LiveCredentials,
  credential: Credential | null,
  open: Set<() => void>,
): AsyncIterableIterator<T> {
  return new Repeater<T>(async (push, stop) => {
    const iterator = source[Symbol.asyncIterator]();
    const untrack = credential ? live.track(credential, () => setTimeout(stop, ENDING_GRACE_MS)) : () => {};
    open.add(stop);
    const stopped = stop.then((): typeof DONE => DONE);
    try {
      for (;;) {
        const step = await Promise.race([iterator.next(), stopped]);
        if (step === DONE || step.done) return;
        await push(step.value);
      }
    } finally {
      untrack();
      open.delete(stop);
      stop();
      Promise.resolve(iterator.return?.()).catch(() => {});
    }
  });
}

export interface LiveStreamsOptions {
  /** Where the credentials' ends are reported (`runtime.live`). */
  live: LiveCredentials;
}

/**
 * Ties every subscription (SSE or WebSocket) to the credential that opened it: the stream ends
 * when the credential does. `endAll` ends every open subscription (shutdown).
 */
export function useLiveStreams({
  live,
}: LiveStreamsOptions): Plugin<{ viewer: Viewer }> & { endAll(): void } {
  const open = new Set<() => void>();
  return {
    onSubscribe({ args }) {
      const { viewer } = args.contextValue as unknown as { viewer: Viewer };
      return {
        onSubscribeResult({ result, setResult }) {
          if (Symbol.asyncIterator in result) {
            setResult(untilEnded(result, live, credentialOf(viewer), open));
          }
        },
      };
    },
    endAll() {
      for (const stop of open) stop();
    },
  };
}
