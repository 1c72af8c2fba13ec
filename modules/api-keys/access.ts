import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';

/** A key is visible to its owner and to admins. */
export const canSeeKey = (viewer: Viewer, key: { userId: string }) =>
  key.userId === viewer.userId || roles.api.isAdmin(viewer);

/**
 * Revoking a key manages credentials (a key needs `admin`), except revoking the very key the
 * request uses: that is signing out, which never needs a right.
 */
export const canRevokeKey = (viewer: Viewer, key: { id: string; userId: string }) =>
  key.id === viewer.apiKeyId || (roles.api.managesCredentials(viewer) && canSeeKey(viewer, key));
