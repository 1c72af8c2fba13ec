import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { DateTimeResolver, JSONObjectResolver, JSONResolver, SafeIntResolver } from 'graphql-scalars';
import type { AuthScopes, RequestContext, ScopeLoaders } from './context.ts';
import { PorticoError } from './errors.ts';
import { decodeNodeId } from './ids.ts';

export interface BuilderTypes {
  Context: RequestContext;
  AuthScopes: AuthScopes;
  DefaultFieldNullability: false;
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
    JSONObject: { Input: Record<string, unknown>; Output: Record<string, unknown> };
    SafeInt: { Input: number; Output: number };
    File: { Input: File; Output: never };
  };
}

/**
 * The one schema builder of the process. It defines no types of its own beyond
 * the contract's scalars: modules register theirs through `defineModule({ graphql })`.
 */
export const builder = new SchemaBuilder<BuilderTypes>({
  // Scope auth first, so every other plugin's fields are wrapped by it.
  plugins: [ScopeAuthPlugin, RelayPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (context) => {
      const rules: ScopeLoaders = { public: true };
      for (const module of context.runtime.modules) {
        if (module.authScopes) Object.assign(rules, module.authScopes(context));
      }
      // Every rule of AuthScopes is contributed by some module (checked by the schema-walk test).
      return rules as Required<ScopeLoaders>;
    },
    unauthorizedError: (_parent, context) =>
      context.viewer.userId
        ? new PorticoError('FORBIDDEN', 'You are not allowed to do this.')
        : new PorticoError('UNAUTHENTICATED', 'Sign in first.'),
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    decodeGlobalID: decodeNodeId,
    // Each Node type checks its own rules when loaded; `node` itself is open.
    nodeQueryOptions: { authScopes: { public: true } },
    nodesQueryOptions: false,
  },
});

builder.addScalarType('DateTime', DateTimeResolver, { description: 'An ISO-8601 date-time string in UTC.' });
builder.addScalarType('JSON', JSONResolver, { description: 'Any JSON value.' });
builder.addScalarType('JSONObject', JSONObjectResolver, { description: 'A JSON object.' });
builder.addScalarType('SafeInt', SafeIntResolver, {
  description: 'An integer between -(2^53-1) and 2^53-1.',
});
builder.scalarType('File', {
  description: 'A file sent with the GraphQL multipart request specification.',
  serialize: () => {
    throw new Error('File is an input-only scalar');
  },
  parseValue: (value) => {
    if (isFile(value)) return value;
    throw new PorticoError('BAD_USER_INPUT', 'Expected a file sent as a multipart upload.');
  },
});

/** A File, or the look-alike that Yoga's fetch ponyfill parses multipart parts into behind node:http. */
function isFile(value: unknown): value is File {
  if (value instanceof File) return true;
  const candidate = value as Partial<File> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.name === 'string' &&
    typeof candidate.size === 'number' &&
    typeof candidate.stream === 'function'
  );
}

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export type Builder = typeof builder;
