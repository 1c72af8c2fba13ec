import {
  type BlobRecord,
  BlobTooLarge,
  type Builder,
  fromGlobalId,
  PorticoError,
  paginate,
  type RequestContext,
  builder as schemaBuilder,
} from '../../src/index.ts';
import leases from '../leases/index.ts';
import roles from '../roles/index.ts';
import users from '../users/index.ts';
import { canDeleteBlob, canRead, canSeeBlob, canWrite, listedOwner } from './access.ts';
import type { BlobFiles } from './instance.ts';
import { blobPath, findBlob, loadBlobs, remove, upload } from './service.ts';
import { MAX_SIGNED_SECONDS, signedPath, signerOf } from './signed.ts';

export const BlobRef = schemaBuilder.objectRef<BlobRecord>('Blob');

const denied = (context: RequestContext) =>
  context.viewer.userId
    ? new PorticoError('FORBIDDEN', 'You are not allowed to do this.')
    : new PorticoError('UNAUTHENTICATED', 'Sign in first.');

const notFound = () => new PorticoError('NOT_FOUND', 'No such blob.');
const rulesOf = (context: RequestContext) => context.runtime.settings.blobs;
const visible = (context: RequestContext, blob: BlobRecord | null) =>
  blob && canSeeBlob(context.viewer, rulesOf(context), blob.ownerId) ? blob : null;

/**
 * A content type prefix to list by: printable ASCII, as media types are (so both databases fold
 * its case alike), at most as long as a stored content type; empty means no filter.
 */
function checkedTypePrefix(prefix: string | null | undefined) {
  if (!prefix) return null;
  if (prefix.length > 255 || !/^[\x20-\x7e]+$/.test(prefix)) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      'contentTypePrefix has at most 255 printable ASCII characters.',
      { field: 'contentTypePrefix' },
    );
  }
  return prefix;
}

/**
 * Blobs `uploadBlob` answers with: their uploader sees their metadata, as `POST /blobs` shows it,
 * even without read access (an API key with only `blobs:write`); their bytes and signed URLs
 * still need read access. Records are per request, so this never outlives the upload's answer.
 */
const uploadedHere = new WeakSet<BlobRecord>();

export function registerBlobs(builder: Builder, self: (context: RequestContext) => BlobFiles) {
  builder.node(BlobRef, {
    id: { resolve: (blob) => blob.id },
    // Blobs the viewer may not read are null, like unknown ones: no existence oracle.
    loadMany: async (ids, context) =>
      (await loadBlobs(context.runtime, ids)).map((blob) => visible(context, blob)),
    authScopes: (blob, context) =>
      uploadedHere.has(blob) || canSeeBlob(context.viewer, rulesOf(context), blob.ownerId),
    fields: (t) => ({
      size: t.field({ type: 'SafeInt', resolve: (blob) => blob.size }),
      contentType: t.exposeString('contentType'),
      sha256: t.exposeString('sha256', { description: 'Lower-case hex SHA-256 of the content.' }),
      filename: t.string({ nullable: true, resolve: (blob) => blob.filename }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      owner: t.loadable({
        type: users.api.UserRef,
        nullable: true,
        load: (ids: string[], { db }) => users.api.loadUsers(db.system, ids),
        resolve: (blob, _args, { viewer }) =>
          blob.ownerId && (blob.ownerId === viewer.userId || roles.api.isAdmin(viewer)) ? blob.ownerId : null,
      }),
      url: t.string({
        description:
          'Path of the download route, e.g. /blobs/<id>; it needs the same credentials as this API.',
        resolve: blobPath,
      }),
      signedUrl: t.string({
        description:
          'A URL that works without credentials until it expires or the session that signed it ends.',
        // It hands out reading, so it needs read access whatever else let the viewer see the blob.
        authScopes: (blob, _args, context) => canSeeBlob(context.viewer, rulesOf(context), blob.ownerId),
        args: { expiresInSeconds: t.arg.int({ defaultValue: 300 }) },
        resolve: (blob, { expiresInSeconds }, context) => {
          const seconds = expiresInSeconds ?? 300;
          if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_SIGNED_SECONDS) {
            throw new PorticoError(
              'BAD_USER_INPUT',
              `expiresInSeconds is 1 to ${MAX_SIGNED_SECONDS} (7 days).`,
              { field: 'expiresInSeconds' },
            );
          }
          const signer = signerOf(context.viewer);
          if (!signer) throw new PorticoError('UNAUTHENTICATED', 'Sign in to sign a URL.');
          return signedPath(context.runtime, blob.id, signer, seconds);
        },
      }),
    }),
  });

  const BlobConnection = builder.connectionObject(
    { type: BlobRef, name: 'BlobConnection' },
    { name: 'BlobEdge' },
  );

  builder.queryFields((t) => ({
    blob: t.field({
      type: BlobRef,
      nullable: true,
      description: 'Null for unknown blobs and for blobs the viewer may not read.',
      authScopes: { public: true },
      args: { id: t.arg.id({ required: true }) },
      resolve: async (_root, { id }, context) =>
        visible(context, await findBlob(context.runtime, fromGlobalId(String(id), 'Blob'))),
    }),
    blobs: t.field({
      type: BlobConnection,
      description:
        'The viewer\'s blobs, newest first; an admin\'s call lists all. With `contentTypePrefix` (e.g. "image/"), only those whose content type starts with it, ignoring case.',
      authScopes: { authenticated: true },
      args: { first: t.arg.int(), after: t.arg.string(), contentTypePrefix: t.arg.string() },
      resolve: (_root, args, context) => {
        if (!canRead(context.viewer, rulesOf(context))) throw denied(context);
        const contentTypePrefix = checkedTypePrefix(args.contentTypePrefix);
        const ownerId = listedOwner(context.viewer);
        return paginate(
          'blob',
          args,
          (page) => context.runtime.store.blobs.list({ ...page, ownerId, contentTypePrefix }),
          (blob) => blob.id,
        );
      },
    }),
  }));

  builder.mutationFields((t) => ({
    uploadBlob: t.field({
      type: BlobRef,
      description: 'A GraphQL multipart upload, held in memory: large files go through POST /blobs.',
      authScopes: { public: true },
      args: { file: t.arg({ type: 'File', required: true }), fence: t.arg({ type: leases.api.FenceInput }) },
      resolve: async (_root, { file, fence }, context) => {
        if (!canWrite(context.viewer, rulesOf(context))) throw denied(context);
        try {
          const files = self(context);
          const blob = await upload(context.runtime, files.storage, files.incoming(file.stream()), {
            contentType: file.type || null,
            filename: file.name || null,
            ownerId: context.viewer.userId,
            fence,
          });
          uploadedHere.add(blob);
          return blob;
        } catch (error) {
          if (error instanceof BlobTooLarge) {
            throw new PorticoError('PAYLOAD_TOO_LARGE', error.message, { limit: error.limit });
          }
          throw error;
        }
      },
    }),
    deleteBlob: t.boolean({
      description: 'The owner (or an admin) with write access.',
      authScopes: { public: true },
      args: { id: t.arg.id({ required: true }), fence: t.arg({ type: leases.api.FenceInput }) },
      resolve: async (_root, { id, fence }, context) => {
        if (!canWrite(context.viewer, rulesOf(context))) throw denied(context);
        const deleted = await remove(
          context.runtime,
          self(context).storage,
          fromGlobalId(String(id), 'Blob'),
          (blob) => {
            if (!canSeeBlob(context.viewer, rulesOf(context), blob.ownerId)) throw notFound();
            if (!canDeleteBlob(context.viewer, rulesOf(context), blob.ownerId)) throw denied(context);
          },
          fence,
        );
        // Unknown and unseen blobs answer alike.
        if (!deleted) throw notFound();
        return true;
      },
    }),
  }));
}
