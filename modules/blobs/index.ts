import { defineModule } from '../../src/index.ts';
import { blobScopes } from './access.ts';
import { blobsConfig } from './config.ts';
import { BlobRef, registerBlobs } from './graphql.ts';
import { BlobFiles } from './instance.ts';
import { blobProtocolRoutes, blobRoutes } from './routes.ts';
import { createFsStorage } from './storage.ts';

export type { StorageFactory } from './storage.ts';

/**
 * Uploaded files: bytes stored once per SHA-256 behind a storage driver (the filesystem by default),
 * metadata in the store, `POST /blobs` and `GET /blobs/:id`, signed URLs.
 */
export default defineModule({
  name: 'blobs',
  dependsOn: ['users', 'roles', 'sessions', 'api-keys', 'leases'],
  config: blobsConfig,
  graphql: registerBlobs,
  scopes: (settings) => blobScopes(settings.blobs),
  multipartFileBytes: (settings) => settings.blobs.maxBytes,
  setup(runtime) {
    const files = new BlobFiles(runtime);
    // `POST /blobs`, `GET /blobs/:id`, and the blob calls of the store protocol.
    return Object.assign(files, { routes: [...blobRoutes(files), ...blobProtocolRoutes(files)] });
  },
  /** `createFsStorage(root)`: the default driver, for configurations that wrap or relocate it. */
  api: { BlobRef, createFsStorage },
});
