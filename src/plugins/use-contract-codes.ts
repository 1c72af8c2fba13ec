import { GraphQLError } from 'graphql';
import type { MaskError, Plugin, YogaLogger } from 'graphql-yoga';
import {
  ERROR_CODES,
  isDatabaseUnavailable,
  isUnstorableText,
  remadeError,
  serviceUnavailable,
  unstorableText,
} from '../errors.ts';
import type { Logger } from '../logger.ts';

/** Every GraphQL result over HTTP and SSE leaves with the contract's codes (`withContractCodes`). */
export function useContractCodes(): Plugin {
  return {
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || Symbol.asyncIterator in result) return;
      setResult(withContractCodes(result));
    },
  };
}

const CONTRACT_CODES = new Set<string>(ERROR_CODES);

/** The result with each error given one of the contract's codes; WebSocket results go through it too. */
export function withContractCodes<R extends { errors?: readonly GraphQLError[] }>(result: R): R {
  return result.errors?.length ? { ...result, errors: result.errors.map(withContractCode) } : result;
}

/**
 * Every error leaves with one of the contract's codes. Parse, validation and limit
 * errors (no code, or Yoga's GRAPHQL_PARSE_FAILED) are the client's: BAD_USER_INPUT.
 */
function withContractCode(error: GraphQLError): GraphQLError {
  const code = error.extensions?.code;
  if (typeof code === 'string' && CONTRACT_CODES.has(code)) return error;
  return remadeError(error, {
    extensions: {
      ...error.extensions,
      // Yoga's name for a multipart file over the form-data limit.
      code:
        code === 'REQUEST_ENTITY_TOO_LARGE'
          ? 'PAYLOAD_TOO_LARGE'
          : error.path
            ? 'INTERNAL_SERVER_ERROR'
            : 'BAD_USER_INPUT',
    },
  });
}

/**
 * Yoga's `maskError`: an outage becomes SERVICE_UNAVAILABLE and text no database stores
 * BAD_USER_INPUT; GraphQL errors pass; anything else is a bug, logged and masked as
 * INTERNAL_SERVER_ERROR (with its message and stack in development mode).
 */
export function maskToContract(log: Logger): MaskError {
  return (error, message, isDev) => {
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    if (isDatabaseUnavailable(original)) return serviceUnavailable();
    if (isUnstorableText(original)) return unstorableText();
    if (
      error instanceof GraphQLError &&
      (error.originalError === undefined || error.originalError instanceof GraphQLError)
    ) {
      return error;
    }
    log.error({ err: original }, 'unexpected error');
    return new GraphQLError(message, {
      extensions: {
        code: 'INTERNAL_SERVER_ERROR',
        ...(isDev
          ? { originalError: { message: (original as Error)?.message, stack: (original as Error)?.stack } }
          : {}),
      },
    });
  };
}

/** An error maskToContract turns into a contract answer (SERVICE_UNAVAILABLE, BAD_USER_INPUT), not a bug. */
function isContractAnswer(error: unknown): boolean {
  const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  return isDatabaseUnavailable(original) || isUnstorableText(original);
}

/**
 * Yoga's log lines, into `log`. Yoga logs each error that maskError replaced: an outage or
 * refused text is an answer, not news, so those are left out.
 */
export function contractLogger(log: Logger): YogaLogger {
  return {
    debug: (...args) => log.debug(args.map(String).join(' ')),
    info: (...args) => log.info(args.map(String).join(' ')),
    warn: (...args) => log.warn(args.map(String).join(' ')),
    error: (...args) => {
      if (!args.some(isContractAnswer)) log.error(args.map(String).join(' '));
    },
  };
}
