import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';
import type { CollectionDefinition } from './config.ts';

const { allows, ownerOnly } = roles.api;

/** The scopes an API key needs under the rules `authenticated` and `owner` (docs/configuration.md). */
export const readScope = (collection: Pick<CollectionDefinition, 'name'>) => `${collection.name}:read`;
export const writeScope = (collection: Pick<CollectionDefinition, 'name'>) => `${collection.name}:write`;

export const canRead = (viewer: Viewer, collection: CollectionDefinition) =>
  allows(viewer, collection.read, readScope(collection));
export const canWrite = (viewer: Viewer, collection: CollectionDefinition) =>
  allows(viewer, collection.write, writeScope(collection));

/** In `owner` mode a reader sees only their own documents; admins see all. */
export const readerOwner = (viewer: Viewer, collection: CollectionDefinition) =>
  ownerOnly(viewer, collection.read);

/** Is this another user's document, in `owner` mode? It then answers exactly like a missing one. */
export const hiddenByOwner = (viewer: Viewer, collection: CollectionDefinition, ownerId: string | null) => {
  const owner = readerOwner(viewer, collection);
  return owner !== null && ownerId !== owner;
};

/** May the viewer see this document (read rule, and ownership in `owner` mode)? */
export const canSeeDocument = (viewer: Viewer, collection: CollectionDefinition, ownerId: string | null) =>
  canRead(viewer, collection) && !hiddenByOwner(viewer, collection, ownerId);

/** May the viewer change this existing document (write rule, and ownership in `owner` mode)? */
export const canChangeDocument = (viewer: Viewer, collection: CollectionDefinition, ownerId: string | null) =>
  canWrite(viewer, collection) && (ownerOnly(viewer, collection.write) === null || ownerId === viewer.userId);

/** What each collection's scopes let an API key do. */
export const collectionScopes = (collection: CollectionDefinition) => [
  ...roles.api.scopesOfRule(collection.read, readScope(collection), `read documents of ${collection.name}`),
  ...roles.api.scopesOfRule(
    collection.write,
    writeScope(collection),
    `create, change and delete documents of ${collection.name}`,
  ),
];
