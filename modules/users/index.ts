import { defineModule } from '../../src/index.ts';
import { usersConfig } from './config.ts';
import { User, UserSchema } from './entities.ts';
import { type UserLifecycle, userLifecycle } from './extensions.ts';
import { registerUsers, UserRef } from './graphql.ts';
import * as password from './password.ts';
import * as service from './service.ts';

export type { SignupMode } from './config.ts';
export type { UserRecord } from './service.ts';
export type { UserLifecycle };

/**
 * Accounts: email, name, password hash, roles, disabled flag; the `User` type, the admin `users`
 * list and the admin mutations that change a user, which other modules hear of through
 * `userLifecycle` (sessions and API keys end, the audit log records).
 */
export default defineModule({
  name: 'users',
  dependsOn: ['roles'],
  config: usersConfig,
  entities: { system: [UserSchema] },
  graphql: registerUsers,
  api: { User, UserRef, userLifecycle, ...service, ...password },
});
