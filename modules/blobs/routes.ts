import { create as contentDisposition, parse as parseContentDisposition } from 'content-disposition';
import rangeParser from 'range-parser';
import { z } from 'zod';
import {
  answer,
  type BlobRecord,
  BlobTooLarge,
  type ByteRange,
  currentRequestId,
  type ErrorCode,
  type Fence,
  fromWireBlob,
  hasCsrfHeader,
  MAX_BYTES_HEADER,
  type Namespace,
  PorticoError,
  type RequestContext,
  type Route,
  readCall,
  STORE_PROTOCOL_PATH,
  type StageOptions,
  streamedResponse,
  toGlobalId,
  toWireBlob,
  UploadInterrupted,
  wireFence,
  wireText,
} from '../../src/index.ts';
import { canSeeBlob, canWrite } from './access.ts';
import type { BlobFiles } from './instance.ts';
import {
  BLOB_ID,
  blobPath,
  cleanFilename,
  createStaged,
  findBlob,
  OCTET_STREAM,
  remove,
  rowIdOfPath,
  upload,
} from './service.ts';
import { signatureAllows } from './signed.ts';

/** Errors as the kernel's routes answer them: `{ error: message, code, requestId }` with the contract's code. */
const problem = (status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}) =>
  Response.json({ error: message, code, requestId: currentRequestId() }, { status, headers });

/**
 * Refusals of an upload are sent before its body is read; closing the connection afterwards
 * spares reading (and discarding) the rest of it.
 */
const refuse = (status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}) =>
  problem(status, code, message, { connection: 'close', ...headers });

const tooLarge = (limit: number) => refuse(413, 'PAYLOAD_TOO_LARGE', `A blob is at most ${limit} bytes.`);

/** The Blob as POST /blobs answers it; `id` is the GraphQL id. */
export const blobJson = (blob: BlobRecord) => ({
  id: toGlobalId('Blob', blob.id),
  size: blob.size,
  contentType: blob.contentType,
  sha256: blob.sha256,
  filename: blob.filename,
  createdAt: blob.createdAt.toISOString(),
  url: blobPath(blob),
});

/** From `Content-Disposition: attachment; filename="…"` (filename* preferred), else `?filename=`. */
function sentFilename(request: Request): string | null {
  const header = request.headers.get('content-disposition');
  if (header) {
    const name = parseContentDisposition(header).parameters.filename;
    if (name) return name;
  }
  return new URL(request.url).searchParams.get('filename');
}

/**
 * A request body's chunks are the request's alone: Node reads each into a buffer of its own (and a
 * body given to a Request in process is the Request's). So storage may free each once written.
 */
const REQUEST_BODY: StageOptions = { disposableChunks: true };

/** POST /blobs: the raw body, streamed to storage. */
async function uploadRoute(files: BlobFiles, request: Request, context: RequestContext): Promise<Response> {
  const { viewer, runtime } = context;
  const settings = runtime.settings.blobs;
  // A cross-site form posts with the cookie but cannot set this header.
  if (viewer.sessionId && !hasCsrfHeader(request)) {
    return refuse(403, 'FORBIDDEN', 'An upload signed in by cookie needs the x-portico-csrf header.');
  }
  if (!canWrite(viewer, settings)) {
    return viewer.userId
      ? refuse(403, 'FORBIDDEN', 'You are not allowed to upload blobs.')
      : refuse(401, 'UNAUTHENTICATED', 'Sign in first.', { 'www-authenticate': 'Bearer' });
  }
  // Only an early refusal: the bytes are counted as they arrive, whatever this says.
  const declared = request.headers.get('content-length');
  if (declared !== null && !/^\d{1,16}$/.test(declared)) {
    return refuse(400, 'BAD_USER_INPUT', 'The Content-Length header is invalid.');
  }
  if (declared !== null && Number(declared) > settings.maxBytes) return tooLarge(settings.maxBytes);
  let filename: string | null;
  try {
    filename = sentFilename(request);
  } catch {
    return refuse(400, 'BAD_USER_INPUT', 'The Content-Disposition header is invalid.');
  }
  const fence = sentFence(new URL(request.url).searchParams);
  if (fence === 'invalid') {
    return refuse(400, 'BAD_USER_INPUT', 'A fenced upload names `lease` and an integer `token`.');
  }
  try {
    const blob = await upload(
      runtime,
      files.storage,
      files.incoming(request.body ?? new Blob([]).stream()),
      { contentType: request.headers.get('content-type'), filename, ownerId: viewer.userId, fence },
      REQUEST_BODY,
    );
    return Response.json(blobJson(blob), { status: 201, headers: { location: blobPath(blob) } });
  } catch (error) {
    if (error instanceof BlobTooLarge) return tooLarge(error.limit);
    if (error instanceof UploadInterrupted) return refuse(400, 'BAD_USER_INPUT', error.message);
    if (error instanceof PorticoError && error.code === 'FENCE_REJECTED') {
      return refuse(409, 'FENCE_REJECTED', error.message);
    }
    throw error;
  }
}

/** `?lease=<key>&token=<n>`: the upload is fenced (checked with the metadata write); both or neither. */
function sentFence(query: URLSearchParams): Fence | null | 'invalid' {
  const lease = query.get('lease');
  const token = query.get('token');
  if (lease === null && token === null) return null;
  if (!lease || !token || !/^\d{1,15}$/.test(token)) return 'invalid';
  return { lease, token: Number(token) };
}

// Types a browser would run or render as a page of this origin: served as opaque bytes.
const ACTIVE_TYPE = /html|xml|svg|script|^multipart\//;
// Shown in the browser when opened; every other type downloads.
const INLINE_TYPE =
  /^(image\/(png|jpeg|gif|webp|avif|bmp)|(audio|video)\/[\w.+-]+|text\/plain|application\/pdf)$/;

/** The served Content-Type and Content-Disposition (RFC 6266, ASCII fallback plus filename*). */
function presentation(blob: BlobRecord) {
  const essence = blob.contentType.split(';')[0]!.trim().toLowerCase();
  const active = ACTIVE_TYPE.test(essence);
  const inline = !active && INLINE_TYPE.test(essence);
  return {
    type: active ? OCTET_STREAM : blob.contentType,
    disposition: contentDisposition(cleanFilename(blob.filename) ?? undefined, {
      type: inline ? 'inline' : 'attachment',
    }),
  };
}

/** If-None-Match: `*`, or a list of (possibly weak) entity tags. */
function matchesAny(header: string | null, etag: string): boolean {
  if (header === null) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

/** The blob named by the path, if this request may read it: by its credential or a signed URL. */
async function readable(context: RequestContext, segment: string, query: URLSearchParams) {
  // The id format is checked before any lookup: nothing else reaches a query, let alone a path.
  const id = rowIdOfPath(segment);
  if (!id) return null;
  const blob = await findBlob(context.runtime, id);
  if (!blob) return null;
  if (canSeeBlob(context.viewer, context.runtime.settings.blobs, blob.ownerId)) return blob;
  return query.has('sig') && (await signatureAllows(context.runtime, blob.id, query)) ? blob : null;
}

/** GET and HEAD /blobs/:id. Unknown and forbidden blobs answer the same 404. */
async function downloadRoute(
  files: BlobFiles,
  request: Request,
  context: RequestContext,
  params: Record<string, string>,
) {
  const blob = await readable(context, params.id ?? '', new URL(request.url).searchParams);
  if (!blob) return problem(404, 'NOT_FOUND', 'No such blob.');
  const etag = `"${blob.sha256}"`;
  // Revalidated on every use, so that access is checked each time; the ETag makes that cheap.
  const cache = { etag, 'cache-control': 'private, no-cache', 'x-content-type-options': 'nosniff' };
  if (matchesAny(request.headers.get('if-none-match'), etag)) {
    return new Response(null, { status: 304, headers: cache });
  }
  const { type, disposition } = presentation(blob);
  const headers: Record<string, string> = {
    ...cache,
    'accept-ranges': 'bytes',
    'content-type': type,
    'content-disposition': disposition,
    'content-security-policy': "default-src 'none'; sandbox",
  };

  let range: ByteRange | undefined;
  const asked = request.headers.get('range');
  const ifRange = request.headers.get('if-range');
  if (asked?.startsWith('bytes=') && (ifRange === null || ifRange === etag)) {
    const ranges = rangeParser(blob.size, asked, { combine: true });
    if (ranges === -1) {
      return new Response(null, {
        status: 416,
        headers: { ...headers, 'content-range': `bytes */${blob.size}` },
      });
    }
    // One range: 206. Several: the whole blob, simpler on both sides than multipart/byteranges.
    // A malformed header is ignored (RFC 9110).
    if (ranges !== -2 && ranges.length === 1) range = ranges[0];
  }
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${blob.size}`;
  headers['content-length'] = String(range ? range.end - range.start + 1 : blob.size);
  const status = range ? 206 : 200;
  if (request.method === 'HEAD') return new Response(null, { status, headers });

  const body = await files.storage.read(blob.sha256, range, request.signal);
  if (!body) {
    context.log.error({ blob: blob.id, sha256: blob.sha256 }, 'blob has a row but no bytes');
    return problem(404, 'NOT_FOUND', 'No such blob.');
  }
  return streamedResponse(
    body,
    { status, headers },
    {
      onSent: files.sent,
      onError: (error) =>
        context.log.error({ err: error, blob: blob.id, sha256: blob.sha256 }, 'blob download failed midway'),
    },
  );
}

/** `POST /blobs` and `GET`/`HEAD /blobs/:id`, on the gateway's storage. */
export const blobRoutes = (files: BlobFiles): Route[] => [
  { method: 'POST', path: '/blobs', handler: (request, context) => uploadRoute(files, request, context) },
  {
    method: ['GET', 'HEAD'],
    path: '/blobs/:id',
    handler: (request, context, params) => downloadRoute(files, request, context, params),
  },
];

// ---------------------------------------------------------------- store protocol (data server side)

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const blobId = z.string().regex(BLOB_ID);
const stagedRef = z.object({ key: z.string().max(256) });
const wireBlob = z.object({
  id: blobId,
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
  contentType: wireText(255),
  filename: wireText(255).nullable(),
  /** Prefixed by the caller's namespace, it must fit the store's 255 characters. */
  ownerId: wireText(128).nullable(),
  createdAt: z.iso.datetime(),
});
const blobCalls = {
  find: z.object({ id: blobId }),
  findMany: z.object({ ids: z.array(blobId).max(1000) }),
  list: z.object({
    ownerId: wireText(128).nullable(),
    everyone: z.boolean(),
    contentTypePrefix: wireText(255).nullish(),
    after: blobId.nullable(),
    limit: z.number().int().min(1).max(1000),
  }),
  create: z.object({ blob: wireBlob, staged: stagedRef, fence: wireFence }),
  delete: z.object({ id: blobId, fence: wireFence }),
  collect: z.object({ sha256: sha256Hex, size: z.number().int().nonnegative() }),
  unreferenced: z.object({ sha256s: z.array(sha256Hex).max(1000) }),
  staged: z.object({ staged: stagedRef }),
  exists: z.object({ sha256: sha256Hex }),
};

/**
 * The blob calls of the store protocol (docs/store-protocol.md): metadata on this gateway's store,
 * bytes in its storage, streamed both ways. Uploads are staged here first; a gateway names them
 * by key, and what they hold (digest, size) is what this side measured, never what it claims.
 */
export const blobProtocolRoutes = (files: BlobFiles): Route[] => {
  const path = (rest: string) => `${STORE_PROTOCOL_PATH}/blobs${rest}`;
  return [
    {
      method: 'PUT',
      path: path('/staged'),
      handler: (request, context) =>
        answer(context, async () => {
          if (!request.body) throw new PorticoError('BAD_USER_INPUT', 'An upload has a body.');
          const header = request.headers.get(MAX_BYTES_HEADER);
          const asked = header === null || header === '' ? Number.NaN : Number(header);
          const own = context.runtime.settings.blobs.maxBytes;
          const maxBytes = Number.isSafeInteger(asked) && asked >= 0 ? Math.min(asked, own) : own;
          try {
            const staged = await files.storage.stage(request.body, maxBytes, REQUEST_BODY);
            files.servedUploads.add(staged);
            return Response.json(
              { key: staged.key, sha256: staged.sha256, size: staged.size },
              { status: 201 },
            );
          } catch (error) {
            if (error instanceof BlobTooLarge) {
              throw new PorticoError('PAYLOAD_TOO_LARGE', error.message, { limit: error.limit });
            }
            if (error instanceof UploadInterrupted) throw new PorticoError('BAD_USER_INPUT', error.message);
            throw error;
          }
        }),
    },
    {
      method: 'GET',
      path: path('/bytes/:sha256'),
      handler: (request, context, params) =>
        answer(context, async () => {
          const sha256 = sha256Hex.safeParse(params.sha256);
          if (!sha256.success) throw new PorticoError('NOT_FOUND', 'No such bytes.');
          const asked = /^bytes=(\d+)-(\d+)$/.exec(request.headers.get('range') ?? '');
          const range = asked ? { start: Number(asked[1]), end: Number(asked[2]) } : undefined;
          const body = await files.storage.read(sha256.data, range, request.signal);
          if (!body) throw new PorticoError('NOT_FOUND', 'No such bytes.');
          return streamedResponse(
            body,
            { status: range ? 206 : 200, headers: { 'content-type': OCTET_STREAM } },
            {
              onError: (error) =>
                context.log.error({ err: error, sha256: sha256.data }, 'blob bytes failed midway'),
            },
          );
        }),
    },
    {
      method: 'POST',
      path: path('/:call'),
      handler: (request, context, params) =>
        answer(context, (caller) => blobCall(files, request, context, caller, params.call ?? '')),
    },
  ];
};

async function blobCall(
  files: BlobFiles,
  request: Request,
  context: RequestContext,
  caller: Namespace,
  call: string,
) {
  const { blobs } = context.runtime.store;
  const outward = (blob: BlobRecord) => toWireBlob({ ...blob, ownerId: caller.outward(blob.ownerId) });
  const staged = (key: string) => {
    const found = files.servedUploads.take(key);
    if (!found)
      throw new PorticoError(
        'BAD_USER_INPUT',
        'No such staged upload (it was used, discarded, or is too old).',
      );
    return found;
  };
  switch (call) {
    case 'find': {
      const { id } = await readCall(request, blobCalls.find);
      const blob = await blobs.find(id);
      return blob && outward(blob);
    }
    case 'find-many': {
      const { ids } = await readCall(request, blobCalls.findMany);
      return (await blobs.findMany(ids)).map(outward);
    }
    case 'list': {
      const args = await readCall(request, blobCalls.list);
      if (!args.everyone && args.ownerId === null) {
        throw new PorticoError(
          'BAD_USER_INPUT',
          "List one owner's blobs (ownerId) or everyone's (everyone: true).",
        );
      }
      const listed = await blobs.list({
        ownerId: args.everyone ? undefined : caller.inward(args.ownerId as string),
        contentTypePrefix: args.contentTypePrefix ?? null,
        after: args.after ?? undefined,
        limit: args.limit,
      });
      return listed.map(outward);
    }
    case 'create': {
      const args = await readCall(request, blobCalls.create);
      const upload = staged(args.staged.key);
      const blob = fromWireBlob({ ...args.blob, sha256: upload.sha256, size: upload.size });
      await createStaged(
        context.runtime,
        files.storage,
        upload,
        { ...blob, ownerId: caller.inward(blob.ownerId) },
        args.fence,
      );
      return { created: true };
    }
    case 'delete': {
      const args = await readCall(request, blobCalls.delete);
      const deleted = await remove(context.runtime, files.storage, args.id, () => {}, args.fence);
      return { deleted };
    }
    case 'collect': {
      const content = await readCall(request, blobCalls.collect);
      await blobs.collect(content, (address) => files.storage.delete(address));
      return { collected: true };
    }
    case 'unreferenced': {
      const { sha256s } = await readCall(request, blobCalls.unreferenced);
      return blobs.unreferenced(sha256s);
    }
    case 'commit': {
      const args = await readCall(request, blobCalls.staged);
      await files.storage.commit(staged(args.staged.key));
      return { committed: true };
    }
    case 'discard': {
      const args = await readCall(request, blobCalls.staged);
      const upload = files.servedUploads.take(args.staged.key);
      if (upload) await files.storage.discard(upload);
      return { discarded: true };
    }
    case 'exists': {
      const { sha256 } = await readCall(request, blobCalls.exists);
      return { exists: await files.storage.exists(sha256) };
    }
    default:
      throw new PorticoError('NOT_FOUND', `No store call blobs/${call}.`);
  }
}
