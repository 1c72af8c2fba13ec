import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST the receiver took. */
export interface OtlpExport {
  path: string;
  contentType: string;
  body: Buffer;
}

/** A span as OTLP/JSON carries it, its attributes made a plain object and its resource's service named. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number };
  service: string;
  serviceInstance: string;
}

/** OTLP's span kinds, as numbers on the wire. */
export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4 } as const;
/** OTLP's status code of a failed span. */
export const STATUS_ERROR = 2;

interface JsonValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface JsonAttribute {
  key: string;
  value: JsonValue;
}
interface JsonExport {
  resourceSpans: {
    resource: { attributes: JsonAttribute[] };
    scopeSpans: {
      spans: (Omit<ReceivedSpan, 'attributes' | 'service' | 'serviceInstance'> & {
        attributes?: JsonAttribute[];
      })[];
    }[];
  }[];
}

const attributesOf = (list: JsonAttribute[] = []) =>
  Object.fromEntries(
    list.map(({ key, value }) => [
      key,
      value.stringValue ??
        (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue!)),
    ]),
  );

/**
 * An OTLP/HTTP collector on loopback, as a test needs one: it keeps every export and answers
 * success in the request's own encoding (an empty message is an empty body in protobuf), or
 * `status` (a collector that refuses).
 */
export async function startOtlpReceiver({ status = 200 } = {}) {
  const exports: OtlpExport[] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const contentType = request.headers['content-type'] ?? '';
    exports.push({ path: request.url ?? '', contentType, body: Buffer.concat(chunks) });
    response.writeHead(status, { 'content-type': contentType });
    response.end(contentType.includes('json') ? '{}' : undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    /** Every span of the JSON exports so far. */
    spans(): ReceivedSpan[] {
      return exports
        .filter((received) => received.contentType.includes('json'))
        .flatMap((received) => (JSON.parse(received.body.toString('utf8')) as JsonExport).resourceSpans)
        .flatMap(({ resource, scopeSpans }) => {
          const resourceAttributes = attributesOf(resource.attributes);
          return scopeSpans.flatMap(({ spans }) =>
            spans.map((span) => ({
              ...span,
              parentSpanId: span.parentSpanId ?? '',
              attributes: attributesOf(span.attributes),
              service: String(resourceAttributes['service.name']),
              serviceInstance: String(resourceAttributes['service.instance.id']),
            })),
          );
        });
    },
    /** Forgets what was received. */
    clear() {
      exports.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export type OtlpReceiver = Awaited<ReturnType<typeof startOtlpReceiver>>;

/** A W3C `traceparent` of a new sampled trace, as a caller in front of the gateway would send it. */
export function newTraceparent() {
  const hex = (bytes: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (byte) =>
      byte.toString(16).padStart(2, '0'),
    ).join('');
  const traceId = hex(16);
  const parentSpanId = hex(8);
  return { traceId, parentSpanId, header: `00-${traceId}-${parentSpanId}-01` };
}
