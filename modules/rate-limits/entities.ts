import { defineEntity, p } from '@mikro-orm/core';

/** One counter (per account+IP, per IP, ...) shared by every gateway instance through the database. */
const RateCounterSchema = defineEntity({
  name: 'RateCounter',
  tableName: 'rate_counters',
  properties: {
    key: p.string().length(400).primary(),
    count: p.integer(),
    windowStartedAt: p.datetime(),
    blockedUntil: p.datetime().nullable(),
  },
});
export class RateCounter extends RateCounterSchema.class {}
RateCounterSchema.setClass(RateCounter);

export { RateCounterSchema };
