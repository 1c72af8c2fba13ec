/**
 * Bare graphql-yoga servers with a `hello` field, the baseline Portico is measured against, and a
 * `viewer { user { id email } }` of constants: the shape of Portico's authenticated query without
 * Portico, to tell the cost of the query's shape from the cost of Portico.
 *
 * Two servers: yoga's defaults (the baseline), and the same with `maxRequestBodySize: false`, for
 * reference: by default yoga pipes every request body through a TransformStream to count its bytes,
 * which costs about as much as everything else yoga does for `{ hello }`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSchema, createYoga } from 'graphql-yoga';

const user = { id: 'VXNlcjpiZW5jaA==', email: 'bench@example.com' };

const schema = createSchema({
  typeDefs: /* GraphQL */ `
    type Query {
      hello: String!
      viewer: Viewer!
    }
    type Viewer {
      user: User
    }
    type User {
      id: ID!
      email: String!
    }
  `,
  resolvers: {
    Query: { hello: () => 'world', viewer: () => ({}) },
    Viewer: { user: () => user },
  },
});

const listen = (server: Server) =>
  new Promise<string>((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve(`http://127.0.0.1:${port}`);
    });
  });

const servers = [
  createServer(createYoga({ schema })),
  createServer(createYoga({ schema, maxRequestBodySize: false })),
];
const [listening, unlimited] = await Promise.all(servers.map(listen));
process.stdout.write(`${JSON.stringify({ listening, unlimited })}\n`);

process.once('SIGTERM', () => {
  let open = servers.length;
  for (const server of servers) server.close(() => --open === 0 && process.exit(0));
});
