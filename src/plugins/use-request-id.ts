import type { GraphQLError } from 'graphql';
import { isAsyncIterable, mapAsyncIterator, type Plugin } from 'graphql-yoga';
import { remadeError } from '../errors.ts';
import {
  currentRequestId,
  inRequestScope,
  pulledHere,
  REQUEST_ID_HEADER,
  requestIdFor,
} from '../telemetry/request-scope.ts';

/**
 * Gives every HTTP request an id (`requestIdFor` its `x-request-id`) and handles the whole request
 * inside it (`inRequestScope`), so that every line logged meanwhile carries it. Every response
 * returns it in `x-request-id`, and every GraphQL error in `extensions.requestId`.
 */
export function useRequestId(): Plugin {
  return {
    instrumentation: {
      // Wraps every hook of every plugin, the routes' handlers and the response.
      request: ({ request }, handle) =>
        inRequestScope(requestIdFor(request.headers.get(REQUEST_ID_HEADER)), handle),
    },
    onResultProcess({ result, setResult }) {
      const requestId = currentRequestId();
      // Batching is off: a result is one, or a stream of them (SSE).
      if (requestId === undefined || Array.isArray(result)) return;
      setResult(
        isAsyncIterable(result)
          ? // The response stream pulls the events from outside the request: each runs inside it.
            pulledHere(mapAsyncIterator(result, (each) => withRequestId(each, requestId)))
          : withRequestId(result, requestId),
      );
    },
    onResponse({ response }) {
      const requestId = currentRequestId();
      if (requestId !== undefined) response.headers.set(REQUEST_ID_HEADER, requestId);
    },
  };
}

/** The result with `requestId` added to each error's extensions (graphql-ws results go through it too). */
export function withRequestId<R extends { errors?: readonly GraphQLError[] }>(
  result: R,
  requestId: string,
): R {
  if (!result.errors?.length) return result;
  return {
    ...result,
    errors: result.errors.map((error) =>
      remadeError(error, { extensions: { ...error.extensions, requestId } }),
    ),
  };
}
