import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { Histogram } from 'prom-client';
import { PorticoError, serviceUnavailable } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { RemoteOutcome } from '../../telemetry/metrics.ts';
import { traceHttpCall } from '../../telemetry/tracing.ts';
import { GATEWAY_HEADER } from './identity.ts';
import { type KeyOptions, obtainKey, type RemoteKey } from './key.ts';
import { STORE_ARCHIVE_SCOPE, STORE_PROTOCOL_PATH, type WireError } from './protocol.ts';

/** A call the data server has not answered in this long answers SERVICE_UNAVAILABLE. */
const CALL_TIMEOUT_MS = 30_000;

export interface RequestOptions {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Below the protocol's path, e.g. `/documents/get`. */
  path: string;
  headers?: Record<string, string>;
  /** Text can be sent again after a refused key; a stream cannot. */
  body?: string | ReadableStream<Uint8Array> | null;
  signal?: AbortSignal;
  /** No timeout: the event stream and blob downloads last as long as they must. */
  long?: boolean;
  /** The call's timeout (CALL_TIMEOUT_MS by default). */
  timeoutMs?: number;
}

/**
 * The gateway's side of the store protocol's transport: persistent HTTP/1.1 connections to the
 * data server (no handshake per call), its key (obtained once, and again once when refused), and
 * the protocol's errors turned back into the contract's: a refusal keeps its code, anything that
 * keeps the data server from answering is SERVICE_UNAVAILABLE.
 */
export class RemoteConnection {
  readonly server: URL;
  readonly #agent: http.Agent;
  readonly #keyOptions: KeyOptions;
  readonly #gateway: () => Promise<string>;
  readonly #log: Logger;
  #key: Promise<RemoteKey> | undefined;
  /** Set once a refused key was replaced: a second refusal is final until a call succeeds. */
  #replacedRefusedKey = false;
  /** Why the data server refuses this gateway, once it is final; cleared by a success. */
  #refusal: string | null = null;
  /** Each outcome's histogram child; none: calls are not timed. */
  readonly #timed: Record<RemoteOutcome, { observe(seconds: number): void }> | undefined;

  constructor(
    server: URL,
    keyOptions: KeyOptions,
    gateway: () => Promise<string>,
    log: Logger,
    calls?: Histogram<'outcome'>,
  ) {
    this.server = server;
    this.#keyOptions = keyOptions;
    this.#gateway = gateway;
    this.#log = log;
    this.#timed = calls && {
      ok: calls.labels('ok'),
      refused: calls.labels('refused'),
      unavailable: calls.labels('unavailable'),
    };
    const options = { keepAlive: true, keepAliveMsecs: 5000, scheduling: 'lifo' as const };
    this.#agent = server.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
  }

  /** The key, obtained on first use. Throws StartupError when no source gives one. */
  key(): Promise<RemoteKey> {
    this.#key ??= obtainKey(this.#keyOptions).catch((error: unknown) => {
      this.#key = undefined;
      throw error;
    });
    return this.#key;
  }

  /** Why the data server refuses this gateway's key, when it does; null otherwise. */
  get refusal(): string | null {
    return this.#refusal;
  }

  /** A JSON call: the body sent as JSON, the answer parsed. */
  async call<T>(path: string, body: unknown, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
    const response = await this.request({ method: 'POST', path, body: JSON.stringify(body), timeoutMs });
    return (await readJson(response)) as T;
  }

  /**
   * A request with the key, its answer when it is a success (2xx, 206, 304), else the refusal
   * thrown. Timed to the answer's headers, by outcome: a refusal keeps its code, anything else is
   * an outage; a call its caller gave up on is not timed.
   */
  async request(options: RequestOptions): Promise<IncomingMessage> {
    const started = performance.now();
    const outcome = (outcome: RemoteOutcome) =>
      this.#timed?.[outcome].observe((performance.now() - started) / 1000);
    try {
      const response = await this.#answer(options);
      outcome('ok');
      return response;
    } catch (error) {
      if (!options.signal?.aborted) {
        outcome(
          error instanceof PorticoError && error.code !== 'SERVICE_UNAVAILABLE' ? 'refused' : 'unavailable',
        );
      }
      throw error;
    }
  }

  async #answer(options: RequestOptions): Promise<IncomingMessage> {
    const [{ key }, gateway] = await Promise.all([this.key(), this.#gateway()]);
    options = { ...options, headers: { ...options.headers, [GATEWAY_HEADER]: gateway } };
    let response = await this.#send(options, key);
    if (response.statusCode === 401) {
      response.resume();
      const replacement = await this.#replaceKey(key);
      // A stream was consumed by the refused request: it cannot be sent again.
      const sentStream =
        options.body !== null && options.body !== undefined && typeof options.body !== 'string';
      if (replacement === null || sentStream) {
        throw this.#refused(
          replacement === null
            ? "the data server refuses this gateway's key (401), also the one obtained again"
            : 'the data server refused the key; the new one is used from the next request on',
        );
      }
      response = await this.#send(options, replacement);
      if (response.statusCode === 401) {
        response.resume();
        throw this.#refused("the data server refuses this gateway's key (401), also the one obtained again");
      }
    }
    const status = response.statusCode ?? 0;
    if (status === 403) {
      const refused = await refusalOf(response);
      // The archive calls need more than the protocol: refusing them leaves the store usable.
      if (refused.extensions.scope === STORE_ARCHIVE_SCOPE) throw refused;
      throw this.#refused(`the data server's key lacks the scope store:serve (403)`);
    }
    if (status >= 200 && status < 400) {
      this.#replacedRefusedKey = false;
      this.#refusal = null;
      return response;
    }
    throw await refusalOf(response);
  }

  /** Closes idle connections; a request still running keeps its own. */
  close(): void {
    this.#agent.destroy();
  }

  #refused(reason: string): PorticoError {
    if (this.#refusal !== reason)
      this.#log.error({ server: this.server.origin }, `store unavailable: ${reason}`);
    this.#refusal = reason;
    return serviceUnavailable(`The store does not answer: ${reason}.`);
  }

  /** The contract's "obtain a new key once": null when that was done already or gave nothing new. */
  async #replaceKey(refused: string): Promise<string | null> {
    if (this.#replacedRefusedKey) return null;
    const current = await this.#key;
    if (current && current.key !== refused) return current.key;
    this.#replacedRefusedKey = true;
    const next = obtainKey(this.#keyOptions, refused);
    this.#key = next;
    try {
      const { key, source } = await next;
      this.#log.warn({ source }, 'the data server refused the key; using the one obtained again');
      return key;
    } catch (error) {
      this.#key = current ? Promise.resolve(current) : undefined;
      this.#log.error({ err: error }, 'the data server refused the key and no other could be obtained');
      return null;
    }
  }

  #send(options: RequestOptions, key: string): Promise<IncomingMessage> {
    const url = new URL(
      `${this.server.pathname.replace(/\/$/, '')}${STORE_PROTOCOL_PATH}${options.path}`,
      this.server,
    );
    // A call from a traced request carries its trace on (`traceparent`): the data server continues it.
    return traceHttpCall(options.method, url, (trace) =>
      this.#sendTo(url, trace ? { ...options, headers: { ...options.headers, ...trace } } : options, key),
    );
  }

  #sendTo(url: URL, options: RequestOptions, key: string): Promise<IncomingMessage> {
    const transport = url.protocol === 'https:' ? https : http;
    const { body } = options;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, {
        method: options.method,
        agent: this.#agent,
        signal: options.signal,
        headers: {
          authorization: `Bearer ${key}`,
          ...(typeof body === 'string'
            ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
            : {}),
          ...options.headers,
        },
      });
      if (!options.long) {
        request.setTimeout(options.timeoutMs ?? CALL_TIMEOUT_MS, () =>
          request.destroy(
            Object.assign(new Error('the data server did not answer in time'), { code: 'ETIMEDOUT' }),
          ),
        );
      }
      request.once('response', resolve);
      request.once('error', (error) => reject(this.#unreachable(error, options.signal)));
      if (body === null || body === undefined) request.end();
      else if (typeof body === 'string') request.end(body);
      else {
        const source = Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>);
        source.once('error', (error) => request.destroy(error));
        source.pipe(request);
      }
    });
  }

  #unreachable(error: Error & { code?: string }, signal?: AbortSignal): Error {
    if (signal?.aborted) return error;
    const why = error.code ?? error.message;
    return serviceUnavailable(
      `The store does not answer: the data server at ${this.server.origin} is unreachable (${why}).`,
    );
  }
}

/** A response's JSON body. */
export async function readJson(response: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? null : JSON.parse(text);
}

/** The data server's refusal, with the contract's code; an answer that is not one is an outage. */
async function refusalOf(response: IncomingMessage): Promise<PorticoError> {
  const status = response.statusCode ?? 0;
  let body: Partial<WireError> | null = null;
  try {
    body = (await readJson(response)) as Partial<WireError> | null;
  } catch {
    // Not JSON: a proxy's page, or a server that does not speak the protocol.
  }
  return errorOfWire(status, body);
}

/** The contract's error a data server's refusal (or a stream's `error` line) carries; an outage is SERVICE_UNAVAILABLE. */
export function errorOfWire(status: number, body: Partial<WireError> | null): PorticoError {
  if (status === 503 || !body?.code || status >= 500 || body.code === 'SERVICE_UNAVAILABLE') {
    return serviceUnavailable(
      `The store does not answer: ${body?.message ?? `the data server answered ${status}`}`,
    );
  }
  const { http: _http, ...extensions } = body.extensions ?? {};
  return new PorticoError(
    body.code as PorticoError['code'],
    body.message ?? 'Refused by the data server.',
    extensions,
  );
}

/**
 * The connection's calls for a store that may not serve yet (`notServing` says why, or null):
 * `gate` throws SERVICE_UNAVAILABLE until it does, and `call` is a gated call.
 */
export function servingCalls(connection: RemoteConnection, notServing: () => string | null) {
  const gate = () => {
    const reason = notServing();
    if (reason !== null) throw serviceUnavailable(`The store does not answer: ${reason}.`);
  };
  const call = <T>(path: string, body: unknown) => {
    gate();
    return connection.call<T>(path, body);
  };
  return { gate, call };
}
