/**
 * fastify + mercurius serving `{ hello }`: the fastest Node GraphQL server a user could pick instead
 * of Portico, as a peer row. `jit: 1` compiles a query with graphql-jit from its second call on
 * (mercurius' own cache keeps the parsed and validated document); no logger, no GraphiQL.
 */
import Fastify from 'fastify';
import mercurius from 'mercurius';

const app = Fastify({ logger: false });
await app.register(mercurius, {
  schema: 'type Query { hello: String! }',
  resolvers: { Query: { hello: () => 'world' } },
  jit: 1,
  graphiql: false,
});
const listening = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ listening })}\n`);

process.once('SIGTERM', () => {
  app.close().then(() => process.exit(0));
});
