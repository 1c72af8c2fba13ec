import { Readable } from 'node:stream';
import { Response as NodeFetchResponse } from '@whatwg-node/fetch';

/** A byte stream is read into buffers of this size, each read into again once the socket has written it. */
const SEND_BUFFER = 1024 * 1024;
/** At most this much of a body is handed to the socket and not yet written. */
const SENDING_AT_MOST = 3 * SEND_BUFFER;

export interface StreamedBodyHooks {
  /** Each chunk's size once the socket has taken it (in process: once it was read). */
  onSent?(bytes: number): void;
  /**
   * The source failed midway, or ended short of (or past) the Content-Length: the connection is
   * cut, so that the client sees a broken body rather than a whole one.
   */
  onError?(error: unknown): void;
}

/**
 * A Response for a large body (a blob's bytes). Node's server (whatwg-node) pipes a Node Readable
 * body straight into its ServerResponse, and this body's `pipe` writes the chunks itself, each with
 * a write callback: a byte stream (`type: 'bytes'`, as the folder driver's) is read through a BYOB
 * reader into a few buffers that are reused once the socket has written them, so that a download
 * allocates nothing per chunk. (Fresh 1 MiB chunks are freed only by full collections of the whole
 * heap, one every ~64 MiB sent, which cost the gateway more than the sending itself.) Any other
 * stream's chunks are written as they come. Read any other way (`gateway.fetch` in process), it
 * is a plain Readable of the stream's chunks.
 */
export function streamedResponse(
  source: ReadableStream<Uint8Array>,
  init: ResponseInit,
  hooks: StreamedBodyHooks = {},
): Response {
  const declared = new Headers(init.headers).get('content-length');
  const body = new StreamedBody(source, hooks, declared === null ? null : Number(declared));
  return new NodeFetchResponse(body as unknown as BodyInit, init);
}

/** Whether `value` is a Response: the platform's, or whatwg-node's (as {@link streamedResponse} makes). */
export const isResponse = (value: unknown): value is Response =>
  value instanceof Response || value instanceof NodeFetchResponse;

type Destination = NodeJS.WritableStream & { destroy?(error?: Error): void };

class StreamedBody extends Readable {
  readonly #source: ReadableStream<Uint8Array>;
  readonly #hooks: StreamedBodyHooks;
  /** The Content-Length, when the response has one: the source must give exactly that many bytes. */
  readonly #length: number | null;
  #received = 0;
  #reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader | undefined;
  #piped = false;
  /** Resolves the wait for a write's callback (or for the end of everything). */
  #wake: (() => void) | undefined;

  constructor(source: ReadableStream<Uint8Array>, hooks: StreamedBodyHooks, length: number | null) {
    super();
    this.#source = source;
    this.#hooks = hooks;
    this.#length = length;
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    // Already read from as a plain Readable: piped as one too.
    if (this.#reader) return super.pipe(destination, options);
    this.#piped = true;
    void this.#send(destination, options?.end !== false);
    return destination;
  }

  /** Counts what the source gave; throws when it went past the Content-Length, or (`done`) ended short of it. */
  #count(bytes: number, done: boolean) {
    this.#received += bytes;
    const length = this.#length;
    if (length !== null && (this.#received > length || (done && this.#received < length))) {
      throw new Error(`The body gave ${this.#received} bytes of a Content-Length of ${length}`);
    }
  }

  async #send(destination: Destination, end: boolean) {
    let byob = true;
    let reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>;
    try {
      reader = this.#source.getReader({ mode: 'byob' });
    } catch {
      byob = false;
      reader = this.#source.getReader();
    }
    this.#reader = reader;
    // The client went away (or the socket failed): stop reading, let the source go.
    const stop = () => this.destroy();
    destination.once('close', stop);
    destination.once('error', stop);
    const free: ArrayBuffer[] = [];
    let sending = 0;
    try {
      for (;;) {
        while (sending >= SENDING_AT_MOST && !this.destroyed) await this.#nextWrite();
        if (this.destroyed) return;
        const { done, value } = byob
          ? await (reader as ReadableStreamBYOBReader).read(
              new Uint8Array(free.pop() ?? new ArrayBuffer(SEND_BUFFER)),
            )
          : await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
        if (this.destroyed) return;
        this.#count(value?.byteLength ?? 0, done);
        if (done) break;
        sending += value.byteLength;
        destination.write(value, (error) => {
          sending -= value.byteLength;
          if (!error) {
            this.#hooks.onSent?.(value.byteLength);
            // Written: the buffer is free to be read into again.
            if (byob) free.push(value.buffer as ArrayBuffer);
          }
          this.#wake?.();
        });
      }
      destination.off('close', stop);
      destination.off('error', stop);
      if (end) destination.end();
      this.destroy();
    } catch (error) {
      if (this.destroyed) return;
      this.#hooks.onError?.(error);
      destination.destroy?.();
      this.destroy();
    }
  }

  /** Until a write's callback comes, or the body is destroyed. */
  #nextWrite() {
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }

  override _read() {
    // Piped: #send reads the source.
    if (this.#piped) return;
    this.#reader ??= this.#source.getReader();
    (this.#reader as ReadableStreamDefaultReader<Uint8Array>)
      .read()
      .then(({ done, value }) => {
        this.#count(value?.byteLength ?? 0, done);
        if (done) {
          this.push(null);
          return;
        }
        this.#hooks.onSent?.(value.byteLength);
        this.push(value);
      })
      .catch((error: unknown) => {
        this.#hooks.onError?.(error);
        this.destroy(error instanceof Error ? error : new Error(String(error)));
      });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void) {
    this.#wake?.();
    // Lets go of the source (the folder driver closes its file); nothing if it was read to the end.
    const cancelled = this.#reader ? this.#reader.cancel() : this.#source.cancel();
    cancelled.catch(() => {});
    callback(error);
  }
}
