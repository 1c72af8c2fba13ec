import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { RequestContext } from '../../context.ts';
import { isDatabaseUnavailable, PorticoError } from '../../errors.ts';
import { sha256 } from '../../secrets.ts';
import { isResponse } from '../../streamed-response.ts';
import { GATEWAY_HEADER, GATEWAY_ID } from './identity.ts';
import { type Namespace, STORE_SERVE_SCOPE, type WireError } from './protocol.ts';

/**
 * The data server's side of the store protocol, shared by the modules that serve its parts (the
 * store module: documents, leases, events; the blobs module: blob metadata and bytes): who may
 * call, the caller's namespace, request bodies, and answers.
 */

/** A JSON call's body is at most this: a document is at most 1 MiB of JSON, escaped once more here. */
export const MAX_CALL_BYTES = 4 * 1024 * 1024;

/**
 * The caller's namespace (its gateway id) when it presents an API key holding `store:serve` (or
 * `admin`); else the refusal to answer: 401 without a valid key (the gateway then obtains a new
 * one), 403 with one that lacks the scope. A session cookie does not serve: the protocol is for
 * programs.
 */
export function callerOf(context: RequestContext): Namespace | Response {
  const { viewer } = context;
  if (!viewer.apiKeyId || !viewer.userId) {
    return refusal(401, { code: 'UNAUTHENTICATED', message: 'The store protocol needs an API key.' });
  }
  if (!viewer.scopes.has(STORE_SERVE_SCOPE) && !viewer.scopes.has('admin')) {
    return refusal(403, { code: 'FORBIDDEN', message: `The key lacks the scope ${STORE_SERVE_SCOPE}.` });
  }
  const gateway = context.request.headers.get(GATEWAY_HEADER) ?? '';
  if (!GATEWAY_ID.test(gateway)) {
    return refusal(400, {
      code: 'BAD_USER_INPUT',
      message: `A store call names its gateway (${GATEWAY_HEADER}).`,
    });
  }
  return namespaceOf(gateway);
}

/**
 * The namespace of a gateway (every instance of one deployment): its owners and holders are
 * stored as `<first 16 digits of the gateway id>/<id>`. Ids stored by anyone else (this gateway's own users, other
 * gateways) come back as `~<digest>`: distinct, but matching no id of the caller and telling it
 * nothing. (Every key with `store:serve` reaches all of the store: this keeps ids from colliding,
 * it is not a wall between gateways.)
 */
export function namespaceOf(gateway: string): Namespace {
  // 64 bits of the id tell deployments apart and keep a holder (`s:` and 32 digits) within 64 characters.
  const prefix = `${gateway.slice(0, 16)}/`;
  const inward = (id: string | null) => (id === null ? null : prefix + id);
  const outward = (stored: string | null) =>
    stored === null ? null : stored.startsWith(prefix) ? stored.slice(prefix.length) : foreignId(stored);
  return {
    inward: inward as Namespace['inward'],
    outward: outward as Namespace['outward'],
    owns: (stored) => stored.startsWith(prefix),
  };
}

// A page of others' documents names the same few owners over and over.
const foreignIds = new LRUCache<string, string>({ max: 10_000 });

/** Someone else's id as a caller sees it: distinct and stable, but telling nothing. */
function foreignId(stored: string): string {
  let shown = foreignIds.get(stored);
  if (shown === undefined) {
    shown = `~${sha256(stored).slice(0, 24)}`;
    foreignIds.set(stored, shown);
  }
  return shown;
}

/** The call's arguments, checked against `schema`: BAD_USER_INPUT for anything else. */
export async function readCall<T extends z.ZodType>(request: Request, schema: T): Promise<z.output<T>> {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN);
  if (declared > MAX_CALL_BYTES) {
    throw new PorticoError('PAYLOAD_TOO_LARGE', `A store call is at most ${MAX_CALL_BYTES} bytes.`);
  }
  const text = await request.text();
  if (Buffer.byteLength(text) > MAX_CALL_BYTES) {
    throw new PorticoError('PAYLOAD_TOO_LARGE', `A store call is at most ${MAX_CALL_BYTES} bytes.`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new PorticoError('BAD_USER_INPUT', 'A store call is a JSON object.');
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PorticoError(
      'BAD_USER_INPUT',
      `Bad store call: ${issue?.path.join('.') || 'body'}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

/** Runs a call's handler: its result as JSON, a refusal with the contract's code and status. */
export async function answer(
  context: RequestContext,
  handler: (caller: Namespace) => Promise<unknown>,
): Promise<Response> {
  const caller = callerOf(context);
  if (caller instanceof Response) return caller;
  try {
    const result = await handler(caller);
    return isResponse(result) ? result : Response.json(result ?? null);
  } catch (error) {
    return errorResponse(context, error);
  }
}

const STATUS: Partial<Record<string, number>> = {
  BAD_USER_INPUT: 400,
  VALIDATION_FAILED: 400,
  INDEX_NOT_DECLARED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  FENCE_REJECTED: 409,
  LEASE_LOST: 409,
  PAYLOAD_TOO_LARGE: 413,
  SERVICE_UNAVAILABLE: 503,
};

/** A refusal as the protocol answers it; an outage is 503, anything else a bug, logged, 500. */
export function errorResponse(context: RequestContext, error: unknown): Response {
  const { status, wire } = wireErrorOf(context, error);
  return refusal(status, wire);
}

/** An error as the protocol carries it, with its status (for a refusal, or a line of a stream already begun). */
export function wireErrorOf(context: RequestContext, error: unknown): { status: number; wire: WireError } {
  if (error instanceof PorticoError) {
    const { code: _code, http: _http, ...extensions } = error.extensions;
    return {
      status: STATUS[error.code] ?? 400,
      wire: { code: error.code, message: error.message, extensions },
    };
  }
  if (isDatabaseUnavailable(error)) {
    return {
      status: 503,
      wire: { code: 'SERVICE_UNAVAILABLE', message: "The data server's store does not answer." },
    };
  }
  context.log.error({ err: error }, 'a store protocol call failed');
  return {
    status: 500,
    wire: { code: 'INTERNAL_SERVER_ERROR', message: 'The data server failed; see its log.' },
  };
}

export const refusal = (status: number, error: WireError) => Response.json(error, { status });

// ---------------------------------------------------------------- argument schemas

/** Text the store keeps: no U+0000, no lone surrogates, bounded. */
export const wireText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((text) => !text.includes('\u0000') && text.isWellFormed(), 'holds U+0000 or a lone surrogate');

export const wireFence = z.object({ lease: wireText(512), token: z.number().int().nonnegative() }).nullable();
export const wireVersion = z.number().int().nonnegative().nullable();
