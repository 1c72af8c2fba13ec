import { defineModule } from '../../src/index.ts';
import { usersConfig } from './config.ts';
import { User, UserSchema } from './entities.ts';
import { registerUsers, UserRef } from './graphql.ts';
import * as password from './password.ts';
import * as service from './service.ts';

export type { SignupMode } from './config.ts';
export type { UserRecord } from './service.ts';

/** Accounts: email, name, password hash, roles, disabled flag; the `User` type and the admin `users` list. */
export default defineModule({
  name: 'users',
  dependsOn: ['roles'],
  config: usersConfig,
  entities: { system: [UserSchema] },
  graphql: registerUsers,
  api: { User, UserRef, ...service, ...password },
});
