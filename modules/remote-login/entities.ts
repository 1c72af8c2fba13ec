import { defineEntity, p } from '@mikro-orm/core';

/** Links a local user to the remote login service's id for them (the remote owns the identity). */
const RemoteIdentitySchema = defineEntity({
  name: 'RemoteIdentity',
  tableName: 'remote_identities',
  properties: {
    subject: p.string().length(256).primary(),
    userId: p.string().unique(),
    createdAt: p.datetime(),
  },
});
export class RemoteIdentity extends RemoteIdentitySchema.class {}
RemoteIdentitySchema.setClass(RemoteIdentity);

export { RemoteIdentitySchema };
