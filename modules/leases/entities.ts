import { defineEntity, p } from '@mikro-orm/core';

/**
 * One row per key, kept after release so that `token` only ever grows. Times are
 * epoch milliseconds of the database's clock, never the gateway's: instances with
 * skewed clocks still agree on who holds a lease.
 */
const LeaseSchema = defineEntity({
  name: 'Lease',
  tableName: 'leases',
  properties: {
    key: p.string().length(256).primary(),
    /** `s:<session id>`, `k:<api key id>`, or `x:<random>` for server-side code. */
    holder: p.string().length(64),
    /** The fencing token of the latest grant. */
    token: p.bigint('number'),
    acquiredAt: p.bigint('number'),
    /** A released lease ends at its release time; the key is free once this has passed. */
    expiresAt: p.bigint('number').index(),
  },
});
export class Lease extends LeaseSchema.class {}
LeaseSchema.setClass(Lease);

export { LeaseSchema };
