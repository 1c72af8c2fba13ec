import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';

/** A session is visible to its user and to admins. */
export const canSeeSession = (viewer: Viewer, session: { userId: string }) =>
  session.userId === viewer.userId || roles.api.isAdmin(viewer);
