import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';
import type { AccessRule, CollectionDefinition } from './config.ts';

/** Whether the viewer passes a collection's rule (admins pass every rule). */
export function allows(viewer: Viewer, rule: AccessRule): boolean {
  if (roles.api.isAdmin(viewer)) return true;
  if (rule === 'public') return true;
  if (rule === 'authenticated' || rule === 'owner') return viewer.userId !== null;
  return rule.some((scope) => roles.api.hasScope(viewer, scope));
}

export const canRead = (viewer: Viewer, collection: CollectionDefinition) => allows(viewer, collection.read);
export const canWrite = (viewer: Viewer, collection: CollectionDefinition) =>
  allows(viewer, collection.write);

/** In `owner` mode a reader sees only their own documents; admins see all. */
export const readerOwner = (viewer: Viewer, collection: CollectionDefinition) =>
  collection.read === 'owner' && !roles.api.isAdmin(viewer) ? viewer.userId : null;

/** May the viewer see this document (read rule, and ownership in `owner` mode)? */
export const canSeeDocument = (viewer: Viewer, collection: CollectionDefinition, ownerId: string | null) =>
  canRead(viewer, collection) && (readerOwner(viewer, collection) === null || ownerId === viewer.userId);

/** May the viewer change this existing document (write rule, and ownership in `owner` mode)? */
export const canChangeDocument = (viewer: Viewer, collection: CollectionDefinition, ownerId: string | null) =>
  canWrite(viewer, collection) &&
  (collection.write !== 'owner' || roles.api.isAdmin(viewer) || ownerId === viewer.userId);
