import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';

/** A key is visible to its owner and to admins. */
export const canSeeKey = (viewer: Viewer, key: { userId: string }) =>
  key.userId === viewer.userId || roles.api.isAdmin(viewer);
