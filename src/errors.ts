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
/**
 * The same error with another message or other extensions: a new one, since an error may be
 * shared (the parser cache's validation errors serve every request that sends the same document).
 */
export function remadeError(
  error: GraphQLError,
  {
    message = error.message,
    extensions = error.extensions,
  }: { message?: string; extensions?: Record<string, unknown> },
): GraphQLError {
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions,
  });
}

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
  '57P01', // admin_shutdown: the connection was terminated
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '57P04', // database_dropped
  '57P05', // idle_session_timeout: the server ended an idle connection
  '53300', // too_many_connections
  '3D000', // invalid_catalog_name: the database does not exist (dropped under a running gateway)
  '55P03', // lock_not_available: a lock wait timed out
  'SQLITE_BUSY',
  'SQLITE_CANTOPEN',
]);

/** Codes that mean an outage only with their message: 55000 is also what some bugs raise. */
const unavailableMessages: Record<string, RegExp> = {
  '55000': /is not currently accepting connections/, // ALTER DATABASE … ALLOW_CONNECTIONS false
};

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
    if (typeof code === 'string' && typeof message === 'string' && unavailableMessages[code]?.test(message)) {
      return true;
    }
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

/** Seconds a client should wait before retrying after an outage (Retry-After). */
export const RETRY_AFTER_SECONDS = 5;

/** An outage, not a bug: contract v2 answers SERVICE_UNAVAILABLE with HTTP 503 and Retry-After. */
export const serviceUnavailable = (message = 'A database is unavailable; retry shortly.') =>
  new PorticoError('SERVICE_UNAVAILABLE', message, {
    http: { status: 503, headers: { 'retry-after': String(RETRY_AFTER_SECONDS) } },
  });

/** SERVICE_UNAVAILABLE for an error that is an outage (a database error, or already the answer); else null. */
export function asServiceUnavailable(error: unknown): PorticoError | null {
  if (error instanceof PorticoError && error.code === 'SERVICE_UNAVAILABLE') return error;
  return isDatabaseUnavailable(error) ? serviceUnavailable() : null;
}
