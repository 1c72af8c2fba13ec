/**
 * An OTLP/HTTP trace receiver for `npm run bench:observability`: it takes every export, answers as
 * a collector does (200, an empty ExportTraceServiceResponse) and counts exports, bytes and (for
 * OTLP/JSON) spans, so the benchmark can tell how many spans really left the gateway. Prints
 * `{"listening": url}`, then on SIGTERM `{"exports": n, "bytes": n, "spans": n}`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let exports = 0;
let bytes = 0;
let spans = 0;
const server = createServer((request, response) => {
  const json = request.headers['content-type']?.startsWith('application/json') === true;
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (json) chunks.push(chunk);
  });
  request.on('end', () => {
    if (request.method === 'POST' && request.url === '/v1/traces') exports++;
    // Every span has one spanId (and a child a parentSpanId, which this does not count).
    if (json) spans += Buffer.concat(chunks).toString().split('"spanId"').length - 1;
    response.writeHead(request.method === 'POST' ? 200 : 404, {
      'content-type': json ? 'application/json' : 'application/x-protobuf',
    });
    response.end(json ? '{}' : undefined);
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
});
process.once('SIGTERM', () => {
  console.log(JSON.stringify({ exports, bytes, spans }));
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
