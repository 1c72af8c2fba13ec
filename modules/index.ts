import type { PorticoModule } from '../src/index.ts';
import apiKeys from './api-keys/index.ts';
import audit from './audit/index.ts';
import backups from './backups/index.ts';
import blobs from './blobs/index.ts';
import collections from './collections/index.ts';
import adminConsole from './console/index.ts';
import device from './device/index.ts';
import invites from './invites/index.ts';
import leases from './leases/index.ts';
import magicLink from './magic-link/index.ts';
import mail from './mail/index.ts';
import overview from './overview/index.ts';
import rateLimits from './rate-limits/index.ts';
import remoteLogin from './remote-login/index.ts';
import roles from './roles/index.ts';
import sessions from './sessions/index.ts';
import store from './store/index.ts';
import users from './users/index.ts';

/** The modules every gateway has. A configuration file may add more. */
export const builtinModules: PorticoModule[] = [
  roles,
  users,
  rateLimits,
  audit,
  sessions,
  apiKeys,
  invites,
  remoteLogin,
  mail,
  magicLink,
  device,
  leases,
  collections,
  blobs,
  store,
  backups,
  overview,
  adminConsole,
];
