import { randomBytes } from 'node:crypto';
import { defineEntity, p } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/sql';

/**
 * This deployment's name for data servers: a random id kept in its system database, so every
 * instance and every restart presents the same one. A data server keeps the owners and lease
 * holders of each gateway apart by it (`x-portico-gateway`): two deployments never see each
 * other's users or sessions as their own.
 */
const GatewayIdentitySchema = defineEntity({
  name: 'GatewayIdentity',
  tableName: 'gateway_identity',
  properties: {
    /** Always "gateway": the primary key makes it one row. */
    name: p.string().length(16).primary(),
    id: p.string().length(32),
  },
});
export class GatewayIdentity extends GatewayIdentitySchema.class {}
GatewayIdentitySchema.setClass(GatewayIdentity);

export { GatewayIdentitySchema };

/** The header that names the calling gateway in the store protocol. */
export const GATEWAY_HEADER = 'x-portico-gateway';

/** A gateway id: 32 lower-case hex digits. */
export const GATEWAY_ID = /^[0-9a-f]{32}$/;

/** The deployment's gateway id, made on first use; instances racing to make it agree on the first. */
export async function gatewayId(em: SqlEntityManager): Promise<string> {
  const existing = await em.findOne(GatewayIdentity, { name: 'gateway' });
  if (existing) return existing.id;
  await em
    .createQueryBuilder(GatewayIdentity)
    .insert({ name: 'gateway', id: randomBytes(16).toString('hex') })
    .onConflict('name')
    .ignore()
    .execute();
  const made = await em.fork().findOneOrFail(GatewayIdentity, { name: 'gateway' });
  return made.id;
}
