import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Settings } from '../config.ts';
import type { ErrorCode } from '../errors.ts';
import type { PorticoModule } from '../module.ts';
import type { NodeServerContext } from '../server-context.ts';

/** Largest request body accepted: yoga's default, which multipart uploads need. */
export const MAX_REQUEST_BODY_BYTES = 25_000_000;

/**
 * Form-data limits of GraphQL multipart requests, which are parsed into memory: one file of at
 * most what the modules take (`multipartFileBytes`), and small text fields (`operations`, `map`).
 */
export function formDataLimits(modules: readonly PorticoModule[], settings: Settings) {
  const fileSize = Math.min(
    MAX_REQUEST_BODY_BYTES,
    Math.max(0, ...modules.map((module) => module.multipartFileBytes?.(settings) ?? 0)),
  );
  return {
    fileSize,
    files: fileSize > 0 ? 1 : 0,
    fields: 8,
    fieldSize: 1024 * 1024,
    fieldNameSize: 100,
    parts: 10,
    headerSize: 8 * 1024,
  };
}

export interface BodyLimitOptions {
  /** The largest body accepted, in bytes. Default: {@link MAX_REQUEST_BODY_BYTES}. */
  maxBytes?: number;
}

const bodyError = (message: string, status: number, code: ErrorCode) =>
  new GraphQLError(message, { extensions: { http: { status }, code } });

/**
 * The request body limit, in place of Yoga's (`maxRequestBodySize: false`), which pipes every body
 * through a TransformStream. Behind Node's HTTP server a valid Content-Length frames the body
 * exactly, so checking the header is enough; only a body without one (chunked, or an in-process
 * Request) is counted as it streams.
 */
export function useBodyLimit({ maxBytes = MAX_REQUEST_BODY_BYTES }: BodyLimitOptions = {}): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI, serverContext }) {
      const length = request.headers.get('content-length');
      if (length !== null) {
        if (!/^\d+$/.test(length))
          throw bodyError('Content-Length header is invalid.', 400, 'BAD_USER_INPUT');
        if (Number(length) > maxBytes) throw bodyError('Request body too large', 413, 'PAYLOAD_TOO_LARGE');
        if ((serverContext as NodeServerContext | undefined)?.req) return;
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((req) => {
        const body = req.body;
        if (!body) return parse(req);
        const Transform =
          body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
        let read = 0;
        const limited = body.pipeThrough(
          new Transform({
            transform(chunk: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>) {
              read += chunk.byteLength;
              if (read > maxBytes) {
                controller.error(bodyError('Request body too large', 413, 'PAYLOAD_TOO_LARGE'));
                return;
              }
              controller.enqueue(chunk);
            },
          }),
        );
        return parse(
          new fetchAPI.Request(req.url, {
            method: req.method,
            headers: req.headers,
            signal: req.signal,
            body: limited,
            duplex: 'half',
          } as RequestInit),
        );
      });
    },
  };
}
