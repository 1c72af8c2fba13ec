import type { GraphQLFormattedError } from 'graphql';

/**
 * Codes the client sets itself, besides the contract's `extensions.code` values:
 * the gateway was not reached, or a device login (RFC 8628) did not end with a key.
 */
export type ClientErrorCode = 'NETWORK_ERROR' | 'DEVICE_ACCESS_DENIED' | 'DEVICE_CODE_EXPIRED';

/** Everything the client rejects with, except an abort (which rejects with the signal's reason). */
export class PorticoClientError extends Error {
  /** The contract's code of the first error (e.g. UNAUTHENTICATED), or a `ClientErrorCode`. */
  readonly code: string;
  readonly errors: readonly GraphQLFormattedError[];
  /** The HTTP status, when a response arrived. */
  readonly status?: number;
  /** What a GraphQL response held besides its errors (partial data). */
  readonly data?: unknown;

  constructor(
    code: string,
    errors: readonly GraphQLFormattedError[],
    details: { status?: number; data?: unknown; cause?: unknown } = {},
  ) {
    super(errors[0]?.message ?? code, { cause: details.cause });
    this.name = 'PorticoClientError';
    this.code = code;
    this.errors = errors;
    if (details.status !== undefined) this.status = details.status;
    if (details.data !== undefined && details.data !== null) this.data = details.data;
  }
}

const CODE_OF_STATUS: Record<number, string> = {
  400: 'BAD_USER_INPUT',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
};

export const codeOfStatus = (status: number) => CODE_OF_STATUS[status] ?? 'INTERNAL_SERVER_ERROR';

export function graphQLError(
  errors: readonly GraphQLFormattedError[],
  details: { status?: number; data?: unknown } = {},
): PorticoClientError {
  const code = errors[0]?.extensions?.code;
  return new PorticoClientError(
    typeof code === 'string' ? code : codeOfStatus(details.status ?? 500),
    errors,
    details,
  );
}

/**
 * A failed response of any route: GraphQL errors, a route's `{ error, code }`, or whatever
 * else answered (a proxy's page), which only the status describes.
 */
export function responseError(status: number, body: unknown): PorticoClientError {
  const { errors, error, code } = (body ?? {}) as { errors?: unknown; error?: unknown; code?: unknown };
  if (Array.isArray(errors) && errors.length > 0) return graphQLError(errors, { status });
  const message = typeof error === 'string' ? error : `The gateway answered ${status}.`;
  const contractCode = typeof code === 'string' ? code : codeOfStatus(status);
  return new PorticoClientError(contractCode, [{ message, extensions: { code: contractCode } }], { status });
}

/** Why a request got no response; fetch says only "fetch failed" and keeps the reason in its cause. */
function reasonOf(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  return cause.cause instanceof Error ? cause.cause.message : cause.message;
}

export const networkError = (cause: unknown) =>
  new PorticoClientError(
    'NETWORK_ERROR',
    [{ message: `The gateway could not be reached: ${reasonOf(cause)}` }],
    {
      cause,
    },
  );

/** JSON of a response body, or null when it is none (an empty body, a proxy's HTML page). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
