// The test S3 server's own process (started by server.ts): its configuration comes as JSON in
// PORTICO_S3_SERVER; it prints one JSON line when it listens and one per request answered.
import { once } from 'node:events';
import { createServer } from 'node:http';
import { s3Handler } from './service.ts';
import { Store } from './store.ts';

interface ProcessConfig {
  root: string;
  port: number;
  region: string;
  credentials: Record<string, string>;
}

const config = JSON.parse(process.env.PORTICO_S3_SERVER ?? '') as ProcessConfig;
const store = await Store.open(config.root);
const handler = s3Handler(
  { store, secrets: new Map(Object.entries(config.credentials)), region: config.region },
  (request) => process.stdout.write(`${JSON.stringify({ request })}\n`),
);
const server = createServer(handler);
server.on('checkContinue', handler);
server.listen(config.port, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`${JSON.stringify({ listening: (server.address() as { port: number }).port })}\n`);
