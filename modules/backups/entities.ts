import { defineEntity, p } from '@mikro-orm/core';

/** A backup `portico backup` finished: what the console's Store screen shows as the last one. */
const BackupRunSchema = defineEntity({
  name: 'BackupRun',
  tableName: 'backup_runs',
  properties: {
    id: p.string().length(32).primary(),
    finishedAt: p.datetime().index(),
    /** The archive's path as the command was given it, absolute. */
    file: p.text(),
    bytes: p.bigint('number'),
    rows: p.bigint('number'),
    blobs: p.bigint('number'),
    durationMs: p.integer(),
  },
});
export class BackupRun extends BackupRunSchema.class {}
BackupRunSchema.setClass(BackupRun);

export { BackupRunSchema };
