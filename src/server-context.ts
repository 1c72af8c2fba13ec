import type { IncomingMessage } from 'node:http';

/** What Node's HTTP adapter passes along with each request; in-process requests have no `req`. */
export type NodeServerContext = { req?: IncomingMessage };
