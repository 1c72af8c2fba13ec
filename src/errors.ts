import { GraphQLError } from 'graphql';

/** The contract's `extensions.code` values (schema.graphql, "Conventions"). */
export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'RATE_LIMITED',
  'INVALID_CREDENTIALS',
  'INVALID_TOKEN',
  'SIGNUP_CLOSED',
  'INDEX_NOT_DECLARED',
  'LEASE_LOST',
  'FENCE_REJECTED',
  'VALIDATION_FAILED',
  'INTERNAL_SERVER_ERROR',
  'SERVICE_UNAVAILABLE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** An error meant for the client: its message and code pass error masking unchanged. */
export class PorticoError extends GraphQLError {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
    super(message, { extensions: { ...extensions, code } });
    this.code = code;
  }
}

export const fail = (code: ErrorCode, message: string, extensions?: Record<string, unknown>): never => {
  throw new PorticoError(code, message, extensions);
};

const unavailableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  'SQLITE_BUSY',
  'SQLITE_CANTOPEN',
]);

/**
 * True when an error means a database could not be reached: the request should
 * answer 503 and be retried, not count as a server bug.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 6; depth++) {
    if (typeof current !== 'object') return false;
    const { code, name, message, cause } = current as {
      code?: unknown;
      name?: unknown;
      message?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string' && (unavailableCodes.has(code) || code.startsWith('08'))) return true;
    if (name === 'ConnectionException') return true;
    if (
      typeof message === 'string' &&
      /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed|the database system is (starting up|shutting down)/i.test(
        message,
      )
    ) {
      return true;
    }
    current = cause;
  }
  return false;
}

/**
 * True when PostgreSQL refused text a client sent: U+0000 (22021) or a character the database's
 * encoding lacks (22P05). The boundary refuses such text first; this is the backstop.
 */
export function isUnstorableText(error: unknown): boolean {
  for (let current = error, depth = 0; current && typeof current === 'object' && depth < 6; depth++) {
    const { code, cause } = current as { code?: unknown; cause?: unknown };
    if (code === '22021' || code === '22P05') return true;
    current = cause;
  }
  return false;
}

/** BAD_USER_INPUT for text no database keeps as given, naming the argument when it is known. */
export const unstorableText = (argument?: string) =>
  new PorticoError(
    'BAD_USER_INPUT',
    `${argument ? `"${argument}"` : 'The text'} holds U+0000 or a lone surrogate, which text cannot hold here.`,
    argument ? { argument } : {},
  );

/** An outage, not a bug: contract v2 answers SERVICE_UNAVAILABLE with HTTP 503 and Retry-After. */
export const serviceUnavailable = () =>
  new GraphQLError('A database is unavailable; retry shortly.', {
    extensions: {
      code: 'SERVICE_UNAVAILABLE',
      http: { status: 503, headers: { 'retry-after': '5' } },
    },
  });
