/** A raw node:http server answering every request with a fixed `{ hello }` result: the ceiling. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const body = JSON.stringify({ data: { hello: 'world' } });

const server = createServer((req, res) => {
  // Read the request body like a real handler would, then answer.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ listening: `http://127.0.0.1:${port}` })}\n`);
});

process.once('SIGTERM', () => server.close(() => process.exit(0)));
