import { defineEntity, p } from '@mikro-orm/core';

/**
 * The store an admin chose, for every instance and every restart: one row while a switch stands,
 * none while DATABASE_URL's store is in use. The URL may hold a password, so it is kept sealed
 * with PORTICO_SECRET.
 */
const StoreChoiceSchema = defineEntity({
  name: 'StoreChoice',
  tableName: 'store_choices',
  properties: {
    /** Always "store": the primary key makes it one row. */
    name: p.string().length(16).primary(),
    sealedUrl: p.text(),
    chosenAt: p.datetime(),
  },
});
export class StoreChoice extends StoreChoiceSchema.class {}
StoreChoiceSchema.setClass(StoreChoice);

export { StoreChoiceSchema };
