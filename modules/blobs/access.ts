import type { Viewer } from '../../src/index.ts';
import roles from '../roles/index.ts';
import type { BlobSettings } from './config.ts';

const { allows, ownerOnly, isAdmin } = roles.api;

type Rules = Pick<BlobSettings, 'read' | 'write'>;

/** The scopes an API key needs under the rules `authenticated` and `owner` (docs/configuration.md). */
export const READ_SCOPE = 'blobs:read';
export const WRITE_SCOPE = 'blobs:write';

export const canRead = (viewer: Viewer, rules: Rules) => allows(viewer, rules.read, READ_SCOPE);
export const canWrite = (viewer: Viewer, rules: Rules) => allows(viewer, rules.write, WRITE_SCOPE);

/** May the viewer download this blob (read rule, and ownership in `owner` mode)? */
export const canSeeBlob = (viewer: Viewer, rules: Rules, ownerId: string | null) => {
  if (!canRead(viewer, rules)) return false;
  const onlyOwner = ownerOnly(viewer, rules.read);
  return onlyOwner === null || onlyOwner === ownerId;
};

/** Deleting takes write access and being the owner (or an admin), whatever the read rule. */
export const canDeleteBlob = (viewer: Viewer, rules: Rules, ownerId: string | null) =>
  canWrite(viewer, rules) && (isAdmin(viewer) || (ownerId !== null && ownerId === viewer.userId));

/** Whose blobs `blobs` lists: the viewer's own, everyone's (undefined) for admins. */
export const listedOwner = (viewer: Viewer) => (isAdmin(viewer) ? undefined : (viewer.userId ?? ''));

/** What the blob scopes let an API key do. */
export const blobScopes = (rules: Rules) => [
  ...roles.api.scopesOfRule(rules.read, READ_SCOPE, 'download blobs'),
  ...roles.api.scopesOfRule(rules.write, WRITE_SCOPE, 'upload and delete blobs'),
];
