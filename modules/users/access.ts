import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';

/** A user is visible to themself and to admins. */
export const canSeeUser = (viewer: Viewer, userId: string) =>
  viewer.userId === userId || roles.api.isAdmin(viewer);
