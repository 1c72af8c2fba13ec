import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { streamedResponse } from './streamed-response.ts';

const MIB = 1024 * 1024;

/** `bytes` as a byte stream that reads into the view it is given (a BYOB reader's buffer), `failAt` bytes in it fails. */
function byteSource(bytes: Buffer, failAt = Number.POSITIVE_INFINITY) {
  let position = 0;
  const state = { cancelled: false };
  const stream = new ReadableStream({
    type: 'bytes',
    autoAllocateChunkSize: MIB,
    pull(controller) {
      const request = controller.byobRequest!;
      const view = new Uint8Array(request.view!.buffer, request.view!.byteOffset, request.view!.byteLength);
      if (position >= failAt) {
        controller.error(new Error('disk gone'));
        return;
      }
      const size = Math.min(view.byteLength, bytes.length - position);
      if (size === 0) {
        controller.close();
        request.respond(0);
        return;
      }
      view.set(bytes.subarray(position, position + size));
      position += size;
      request.respond(size);
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

/**
 * A socket's side of a response: it takes each chunk's bytes only when `flush` calls the write's
 * callback, so a buffer used again before that would show up as other bytes.
 */
class SlowSocket extends EventEmitter {
  readonly taken: Buffer[] = [];
  readonly #waiting: { chunk: Uint8Array; callback: (error?: Error | null) => void }[] = [];
  handed = 0;
  ended = false;
  destroyed = false;

  write(chunk: Uint8Array, callback: (error?: Error | null) => void) {
    this.handed += chunk.byteLength;
    this.#waiting.push({ chunk, callback });
    return false;
  }

  get waiting() {
    return this.#waiting.reduce((sum, { chunk }) => sum + chunk.byteLength, 0);
  }

  /** Takes the waiting chunks, as the kernel would once it wrote them. */
  flush() {
    for (const { chunk, callback } of this.#waiting.splice(0)) {
      this.taken.push(Buffer.from(chunk));
      callback();
    }
  }

  end() {
    this.ended = true;
  }

  destroy() {
    this.destroyed = true;
    this.emit('close');
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

/** Pipes the response's body into `socket` as Node's server does, flushing until it ends or gives up. */
async function send(response: Response, socket: SlowSocket) {
  (response.body as unknown as Readable).pipe(socket as unknown as NodeJS.WritableStream);
  for (let i = 0; i < 1000 && !socket.ended && !socket.destroyed; i++) {
    await tick();
    expect(socket.waiting).toBeLessThanOrEqual(3 * MIB);
    socket.flush();
  }
}

describe('streamedResponse', () => {
  it('sends a byte stream through a few reused buffers, each only once the socket took it', async () => {
    const bytes = randomBytes(10 * MIB + 12_345);
    const sent: number[] = [];
    const socket = new SlowSocket();
    await send(streamedResponse(byteSource(bytes).stream, {}, { onSent: (n) => sent.push(n) }), socket);
    expect(socket.ended).toBe(true);
    expect(Buffer.concat(socket.taken).equals(bytes)).toBe(true);
    expect(sent.reduce((a, b) => a + b, 0)).toBe(bytes.length);
  });

  it('sends any other stream chunk by chunk, at most 3 MiB waiting on the socket', async () => {
    const chunks = Array.from({ length: 40 }, () => randomBytes(256 * 1024));
    let sentChunks = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks[sentChunks++];
        if (next) controller.enqueue(new Uint8Array(next));
        else controller.close();
      },
    });
    const socket = new SlowSocket();
    await send(streamedResponse(source, {}), socket);
    expect(socket.ended).toBe(true);
    expect(Buffer.concat(socket.taken).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('cuts the connection when the source fails midway, and says why', async () => {
    const errors: unknown[] = [];
    const socket = new SlowSocket();
    const body = streamedResponse(
      byteSource(randomBytes(4 * MIB), 2 * MIB).stream,
      {},
      {
        onError: (error) => errors.push(error),
      },
    );
    await send(body, socket);
    expect(socket.destroyed).toBe(true);
    expect(socket.ended).toBe(false);
    expect(errors).toEqual([new Error('disk gone')]);
  });

  it('cuts the connection when the source ends short of the Content-Length, or goes past it', async () => {
    for (const [length, declared] of [
      [2 * MIB, 2 * MIB + 1],
      [2 * MIB + 1, 2 * MIB],
    ] as const) {
      const errors: unknown[] = [];
      const socket = new SlowSocket();
      const body = streamedResponse(
        byteSource(randomBytes(length)).stream,
        { headers: { 'content-length': String(declared) } },
        { onError: (error) => errors.push(error) },
      );
      await send(body, socket);
      expect(socket.destroyed).toBe(true);
      expect(socket.ended).toBe(false);
      expect(errors).toHaveLength(1);
      const inProcess = streamedResponse(byteSource(randomBytes(length)).stream, {
        headers: { 'content-length': String(declared) },
      });
      await expect(inProcess.arrayBuffer()).rejects.toThrow('Content-Length');
    }
  });

  it('lets go of the source when the client goes away', async () => {
    const { stream, state } = byteSource(randomBytes(8 * MIB));
    const socket = new SlowSocket();
    (streamedResponse(stream, {}).body as unknown as Readable).pipe(
      socket as unknown as NodeJS.WritableStream,
    );
    await tick();
    socket.destroy();
    await tick();
    expect(state.cancelled).toBe(true);
    expect(socket.handed).toBeLessThan(8 * MIB);
  });

  it('reads as a plain body in process, counting what was read', async () => {
    const bytes = randomBytes(3 * MIB + 1);
    let sent = 0;
    const response = streamedResponse(
      byteSource(bytes).stream,
      { status: 206, headers: { 'x-a': 'b' } },
      {
        onSent: (n) => {
          sent += n;
        },
      },
    );
    expect(response.status).toBe(206);
    expect(response.headers.get('x-a')).toBe('b');
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    expect(sent).toBe(bytes.length);
  });
});
