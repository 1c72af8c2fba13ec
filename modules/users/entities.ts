import { defineEntity, p } from '@mikro-orm/core';

const UserSchema = defineEntity({
  name: 'User',
  tableName: 'users',
  properties: {
    id: p.string().primary(),
    email: p.string().length(320),
    /** `emailKey(email)` (NFKC, trimmed, lower case): unique, so two accounts never differ only by spelling. */
    emailKey: p.string().length(320).unique(),
    name: p.string().length(200).nullable(),
    passwordHash: p.string().nullable(),
    roles: p.json<string[]>(),
    /** Mirrors `roles` containing "admin", so admins can be counted with an index. */
    admin: p.boolean().default(false).index(),
    disabled: p.boolean().default(false),
    createdAt: p.datetime(),
    lastLoginAt: p.datetime().nullable(),
  },
});

export class User extends UserSchema.class {}
UserSchema.setClass(User);

export { UserSchema };
