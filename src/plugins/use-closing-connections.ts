import type { Plugin } from 'graphql-yoga';

export interface ClosingConnectionsOptions {
  /** Aborted when the gateway begins to stop (`runtime.stopping`). */
  stopping: AbortSignal;
}

/**
 * Once stopping, each answer closes its connection (`Connection: close`): Node's server would keep
 * open a keep-alive connection that turns idle after its close, until the client dropped it.
 */
export function useClosingConnections({ stopping }: ClosingConnectionsOptions): Plugin {
  return {
    onResponse({ response }) {
      if (stopping.aborted) response.headers.set('connection', 'close');
    },
  };
}
