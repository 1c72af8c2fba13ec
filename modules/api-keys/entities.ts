import { defineEntity, p } from '@mikro-orm/core';

/** A key for programs: `pk_<id>_<secret>`; the row keeps the id and the secret's SHA-256. */
const ApiKeySchema = defineEntity({
  name: 'ApiKey',
  tableName: 'api_keys',
  properties: {
    id: p.string().length(16).primary(),
    userId: p.string().index(),
    name: p.string().length(100),
    secretHash: p.string().length(64),
    scopes: p.json<string[]>(),
    createdAt: p.datetime(),
    lastUsedAt: p.datetime().nullable(),
    expiresAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    revokedReason: p.string().length(32).nullable(),
  },
});
export class ApiKey extends ApiKeySchema.class {}
ApiKeySchema.setClass(ApiKey);

export { ApiKeySchema };
