import { type ExecutionResult, GraphQLError } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { remadeError } from '../errors.ts';

/**
 * graphql-js completes near misses with the schema's own names: `Did you mean "password"?`,
 * `Did you mean the enum value "ASC"?`, `Did you mean to use an inline fragment on "User"?`.
 * The names it lists never contain a question mark.
 */
const SUGGESTION = / ?Did you mean [^?]*\?/g;

export interface SuggestionMaskOptions {
  /** Whether the request may see suggestions (admins, development mode). */
  shows(request: Request): boolean;
}

/**
 * Removes "Did you mean" suggestions from errors for requests that may not see them: those of
 * validation (fields, arguments, types, enum and input-field literals) and those of variable
 * coercion (enum values, input fields), which execution reports. With introspection closed they
 * would hand out the schema to anyone guessing near its names. Runs on every transport, since
 * HTTP, SSE and graphql-ws all validate and execute through Yoga's envelop.
 */
export function useSuggestionMask({ shows }: SuggestionMaskOptions): Plugin<{ request: Request }> {
  const maskResult = ({
    result,
    setResult,
  }: {
    result: ExecutionResult | AsyncIterable<unknown>;
    setResult: (result: ExecutionResult) => void;
  }) => {
    // Coercion errors come as one result, never in a stream.
    if (!isAsyncIterable(result) && result.errors?.length) {
      setResult({ ...result, errors: result.errors.map(withoutSuggestion) });
    }
  };
  return {
    onValidate({ context }) {
      if (shows(context.request)) return;
      return ({ result, setResult }) => {
        // New errors: Yoga caches the validation result, which an admin may read next.
        if (result.length > 0) setResult(result.map(withoutSuggestion));
      };
    },
    onExecute({ args }) {
      if (shows(args.contextValue.request)) return;
      return { onExecuteDone: maskResult };
    },
    onSubscribe({ args }) {
      if (shows(args.contextValue.request)) return;
      return { onSubscribeResult: maskResult };
    },
  };
}

function withoutSuggestion<E extends Error>(error: E): E | GraphQLError {
  if (!(error instanceof GraphQLError)) return error;
  const message = error.message.replace(SUGGESTION, '');
  if (message === error.message) return error;
  return remadeError(error, { message });
}
