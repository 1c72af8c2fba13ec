/**
 * The typed client of a Portico gateway, for browsers and Node: typed documents from
 * client/generated/, subscriptions over WebSocket or SSE, streamed blob uploads with
 * progress, and in Node the key `portico login` saved.
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type DocumentNode, type FormattedExecutionResult, getOperationAST, print } from 'graphql';
import { createClient as createSseClient, NetworkError } from 'graphql-sse';
import { createClient as createWebSocketClient, type Client as WebSocketClient } from 'graphql-ws';
import { platform } from '#client-platform';
import type { DeviceCodePrompt } from './device-flow.ts';
import { graphQLError, networkError, PorticoClientError, parseJson, responseError } from './errors.ts';
import { iterate, type Sink, type Source } from './iterate.ts';

export type { DeviceCodePrompt } from './device-flow.ts';
export { type ClientErrorCode, PorticoClientError } from './errors.ts';
export * from './generated/graphql.ts';

export interface ClientOptions {
  /** The gateway's base URL, e.g. 'http://127.0.0.1:4000'; '' or location.origin in a browser. */
  url: string;
  /**
   * A Bearer key. Omitted in Node: the key `portico login` saved for this URL, if any.
   * Omitted in a browser: the session cookie.
   */
  apiKey?: string;
  fetch?: typeof fetch;
  headers?: Record<string, string>;
  /**
   * Node only: when the saved key is refused (UNAUTHENTICATED), the device flow runs again,
   * showing its code through this (default: a line on stderr), and the call is retried once.
   */
  onDeviceCode?: (prompt: DeviceCodePrompt) => void;
  /**
   * Called when the subscriptions' WebSocket opens (true) or closes (false), including each
   * failed attempt to reconnect: a browser can tell at once that the gateway went away.
   */
  onSocketChange?: (open: boolean) => void;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface SubscribeOptions {
  /** 'ws' (default): graphql-ws on /graphql. 'sse': GraphQL over SSE, one connection per subscription. */
  transport?: 'ws' | 'sse';
  /** Aborting ends the iteration, like `return()`. */
  signal?: AbortSignal;
}

export interface UploadOptions {
  /** Sent as `?filename=`; the gateway keeps its last path segment. */
  filename?: string;
  /** Default: the blob's own type, else application/octet-stream. */
  contentType?: string;
  /** Bytes sent so far and the total; the last call has loaded === total. */
  onProgress?: (loaded: number, total: number) => void;
  /** Makes the upload conditional on holding a lease (409 FENCE_REJECTED otherwise). */
  fence?: { lease: string; token: number };
  signal?: AbortSignal;
}

/** The contract's Blob JSON, as POST /blobs answers it. */
export interface UploadedBlob {
  /** The GraphQL id. */
  id: string;
  size: number;
  contentType: string;
  sha256: string;
  filename: string | null;
  createdAt: string;
  /** The download path: `/blobs/<id>`, with the id above. */
  url: string;
}

export interface PorticoClient {
  query<R, V>(document: TypedDocumentNode<R, V>, variables?: V, options?: RequestOptions): Promise<R>;
  mutate<R, V>(document: TypedDocumentNode<R, V>, variables?: V, options?: RequestOptions): Promise<R>;
  /** Async iterator of results; ends when the server completes; `return()` unsubscribes. */
  subscribe<R, V>(
    document: TypedDocumentNode<R, V>,
    variables?: V,
    options?: SubscribeOptions,
  ): AsyncIterableIterator<R>;
  /** POST /blobs with progress (XMLHttpRequest in browsers, a counting stream in Node). */
  uploadBlob(body: Blob, options?: UploadOptions): Promise<UploadedBlob>;
  /** Closes the WebSocket if one is open. */
  close(): Promise<void>;
}

/** Close codes of the gateway's WebSocket, as the contract's codes. */
const CODE_OF_CLOSE: Record<number, string> = {
  4400: 'BAD_USER_INPUT',
  4403: 'UNAUTHENTICATED', // the credential ended
  4429: 'RATE_LIMITED',
  4500: 'INTERNAL_SERVER_ERROR',
};

const isCloseEvent = (value: unknown): value is { code: number; reason: string } =>
  typeof value === 'object' && value !== null && typeof (value as { code?: unknown }).code === 'number';

/** Whatever a subscription transport failed with, as the client's error. */
function subscriptionError(error: unknown): PorticoClientError {
  if (error instanceof PorticoClientError) return error;
  if (Array.isArray(error)) return graphQLError(error);
  if (error instanceof NetworkError && error.response) return responseError(error.response.status, null);
  if (isCloseEvent(error) && CODE_OF_CLOSE[error.code]) {
    const code = CODE_OF_CLOSE[error.code]!;
    const message = error.reason || `The gateway closed the connection (${error.code}).`;
    return new PorticoClientError(code, [{ message, extensions: { code } }]);
  }
  return networkError(isCloseEvent(error) ? `closed with ${error.code} ${error.reason}`.trim() : error);
}

const printed = new WeakMap<DocumentNode, { query: string; operationName?: string }>();

/** The request payload of a document, printed once. */
function payloadOf(document: DocumentNode, variables: unknown) {
  let source = printed.get(document);
  if (!source) {
    source = { query: print(document), operationName: getOperationAST(document)?.name?.value };
    printed.set(document, source);
  }
  return { ...source, variables: (variables ?? {}) as Record<string, unknown> };
}

const isRefusal = (error: unknown) => error instanceof PorticoClientError && error.code === 'UNAUTHENTICATED';

export function createClient(options: ClientOptions): PorticoClient {
  const base = options.url.replace(/\/+$/, '');
  // Called through a closure: a browser's fetch refuses to run with another `this`.
  const fetcher: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init));
  const keys = keySource(options, fetcher);
  const authorization = (key: string | undefined): Record<string, string> =>
    key ? { authorization: `Bearer ${key}` } : {};
  // Without a key, a browser's session cookie is the credential.
  const credentials = (key: string | undefined): RequestCredentials => (key ? 'omit' : 'include');

  async function execute<R>(document: DocumentNode, variables: unknown, signal?: AbortSignal): Promise<R> {
    return keys.use(async (key) => {
      let response: Response;
      try {
        response = await fetcher(`${base}/graphql`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/graphql-response+json, application/json',
            ...options.headers,
            ...authorization(key),
          },
          body: JSON.stringify(payloadOf(document, variables)),
          credentials: credentials(key),
          signal,
        });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        throw networkError(error);
      }
      const body = parseJson(await response.text()) as FormattedExecutionResult | null;
      if (body?.errors?.length) throw graphQLError(body.errors, { status: response.status, data: body.data });
      if (!response.ok || !body?.data) throw responseError(response.status, body);
      return body.data as R;
    });
  }

  let webSocket: { key: string | undefined; client: WebSocketClient } | undefined;
  /** One WebSocket per client, reopened when the key changes (after a new login). */
  function webSocketFor(key: string | undefined): WebSocketClient {
    if (webSocket && webSocket.key === key) return webSocket.client;
    void webSocket?.client.dispose();
    const url = new URL(`${base}/graphql`, globalThis.location?.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const client = createWebSocketClient({
      url: url.href,
      // In a browser without a key, the cookie rides on the upgrade request.
      connectionParams: authorization(key),
      // A credential that ended stays ended: reconnecting with it cannot help.
      shouldRetry: (event) => !(isCloseEvent(event) && event.code === 4403),
      on: {
        connected: () => options.onSocketChange?.(true),
        closed: () => options.onSocketChange?.(false),
      },
    });
    webSocket = { key, client };
    return client;
  }

  /** One subscription over the chosen transport, its results turned into data or an error. */
  function open<R>(key: string | undefined, payload: ReturnType<typeof payloadOf>, transport: 'ws' | 'sse') {
    return (sink: Sink<R>) => {
      const results: Sink<FormattedExecutionResult> = {
        next: (result) =>
          result.errors?.length
            ? sink.error(graphQLError(result.errors, { data: result.data }))
            : sink.next(result.data as R),
        error: (error) => sink.error(subscriptionError(error)),
        complete: () => sink.complete(),
      };
      if (transport === 'ws') return webSocketFor(key).subscribe(payload, results);
      const sse = createSseClient({
        url: `${base}/graphql`,
        singleConnection: false,
        headers: { ...options.headers, ...authorization(key) },
        credentials: credentials(key),
        fetchFn: fetcher,
      });
      const unsubscribe = sse.subscribe(payload, results);
      return () => {
        unsubscribe();
        sse.dispose();
      };
    };
  }

  return {
    query: (document, variables, requestOptions) => execute(document, variables, requestOptions?.signal),
    mutate: (document, variables, requestOptions) => execute(document, variables, requestOptions?.signal),

    subscribe<R, V>(
      document: TypedDocumentNode<R, V>,
      variables?: V,
      subscribeOptions: SubscribeOptions = {},
    ) {
      const payload = payloadOf(document, variables);
      const transport = subscribeOptions.transport ?? 'ws';
      return iterate(
        keys.useForSource<R>((key) => open<R>(key, payload, transport)),
        subscribeOptions.signal,
      );
    },

    async uploadBlob(body, uploadOptions = {}) {
      const { filename, contentType, onProgress, fence, signal } = uploadOptions;
      const query = new URLSearchParams();
      if (filename !== undefined) query.set('filename', filename);
      if (fence) {
        query.set('lease', fence.lease);
        query.set('token', String(fence.token));
      }
      const url = `${base}/blobs${query.size > 0 ? `?${query}` : ''}`;
      return keys.use(async (key) => {
        signal?.throwIfAborted();
        let response: Awaited<ReturnType<typeof platform.upload>>;
        try {
          response = await platform.upload({
            url,
            body,
            headers: {
              ...options.headers,
              ...authorization(key),
              'content-type': contentType ?? (body.type || 'application/octet-stream'),
              // Required with cookie credentials; harmless with a key.
              'x-portico-csrf': '1',
            },
            credentials: credentials(key),
            fetch: fetcher,
            onProgress,
            signal,
          });
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          throw networkError(error);
        }
        if (response.status !== 201) throw responseError(response.status, response.body);
        return response.body as UploadedBlob;
      });
    },

    async close() {
      await webSocket?.client.dispose();
      webSocket = undefined;
    },
  };
}

/**
 * The key each call sends. A key given in the options, or none (a browser's cookie), is
 * used as is. In Node without one, the key `portico login` saved is read once; when the
 * gateway refuses it, one device flow replaces it (shared by every call that saw that key
 * refused) and each of those calls is retried once.
 */
function keySource(options: ClientOptions, fetcher: typeof fetch) {
  const { savedKeys } = platform;
  let current: Promise<string | undefined> | undefined;
  const read = () => {
    current ??=
      options.apiKey !== undefined || !savedKeys
        ? Promise.resolve(options.apiKey)
        : savedKeys.read(options.url);
    return current;
  };
  /** The key to retry with after `refused` was refused; undefined when there is nothing to renew. */
  async function renewed(refused: string | undefined): Promise<string | undefined> {
    if (options.apiKey !== undefined || !savedKeys || refused === undefined) return undefined;
    const latest = await read();
    if (latest !== refused) return latest;
    const renewing = savedKeys.renew(options.url, { fetch: fetcher, onDeviceCode: options.onDeviceCode });
    // A failed login leaves the old key in place: the next refusal of it tries again.
    current = renewing.catch(() => refused);
    return renewing;
  }

  return {
    async use<T>(run: (key: string | undefined) => Promise<T>): Promise<T> {
      const key = await read();
      try {
        return await run(key);
      } catch (error) {
        const retryKey = isRefusal(error) ? await renewed(key) : undefined;
        if (retryKey === undefined) throw error;
        return run(retryKey);
      }
    },

    /** Like `use`, for a subscription: refused before its first result, it reopens once with the new key. */
    useForSource<R>(open: (key: string | undefined) => Source<R>): Source<R> {
      return (sink) => {
        let stopped = false;
        let stop = () => {};
        const start = (key: string | undefined, mayRenew: boolean) => {
          if (stopped) return;
          let delivered = false;
          // Once refused, this attempt's remaining events (its completion) are not the caller's.
          let abandoned = false;
          stop = open(key)({
            next: (value) => {
              if (abandoned) return;
              delivered = true;
              sink.next(value);
            },
            error: (error) => {
              if (abandoned) return;
              if (delivered || !mayRenew || !isRefusal(error)) return sink.error(error);
              abandoned = true;
              stop();
              renewed(key).then(
                (retryKey) => (retryKey === undefined ? sink.error(error) : start(retryKey, false)),
                (renewError: unknown) => sink.error(renewError),
              );
            },
            complete: () => {
              if (!abandoned) sink.complete();
            },
          });
        };
        read().then(
          (key) => start(key, true),
          (error: unknown) => sink.error(error),
        );
        return () => {
          stopped = true;
          stop();
        };
      };
    },
  };
}
