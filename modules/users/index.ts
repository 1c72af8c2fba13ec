import { defineModule } from '../../src/index.ts';
import { usersConfig } from './config.ts';
import { User, UserSchema } from './entities.ts';
import { registerUsers, UserRef } from './graphql.ts';
import { checkPasswordPolicy, hashPassword, PASSWORD_MAX, verifyPassword } from './password.ts';
import {
  ADMIN_ROLE,
  adminExists,
  countActiveAdmins,
  createUser,
  findUser,
  findUserByEmail,
  loadUsers,
  normalizeEmail,
  normalizeName,
  setRoles,
  type UserRecord,
  userRecord,
} from './service.ts';

export type { SignupMode } from './config.ts';
export type { UserRecord };

/** Accounts: email, name, password hash, roles, disabled flag; the `User` type and the admin `users` list. */
export default defineModule({
  name: 'users',
  dependsOn: ['roles'],
  config: usersConfig,
  entities: { system: [UserSchema] },
  graphql: registerUsers,
  api: {
    User,
    UserRef,
    ADMIN_ROLE,
    PASSWORD_MAX,
    adminExists,
    countActiveAdmins,
    createUser,
    findUser,
    findUserByEmail,
    loadUsers,
    normalizeEmail,
    normalizeName,
    setRoles,
    userRecord,
    checkPasswordPolicy,
    hashPassword,
    verifyPassword,
  },
});
