import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';
import type { CollectionDefinition } from './config.ts';

const { allows, ownerOnly } = roles.api;

export const canRead = (viewer: Viewer, collection: CollectionDefinition) => allows(viewer, collection.read);
export const canWrite = (viewer: Viewer, collection: CollectionDefinition) =>
  allows(viewer, collection.write);

/** In `owner` mode a reader sees only their own documents; admins see all. */
export const readerOwner = (viewer: Viewer, collection: CollectionDefinition) =>
  ownerOnly(viewer, collection.read);

/** May the viewer see this document (read rule, and ownership in `owner` mode)? */
export const canSeeDocument = (viewer: Viewer, collection: CollectionDefinition, ownerId: string | null) =>
  canRead(viewer, collection) && (readerOwner(viewer, collection) === null || ownerId === viewer.userId);

/** May the viewer change this existing document (write rule, and ownership in `owner` mode)? */
export const canChangeDocument = (viewer: Viewer, collection: CollectionDefinition, ownerId: string | null) =>
  canWrite(viewer, collection) && (ownerOnly(viewer, collection.write) === null || ownerId === viewer.userId);
