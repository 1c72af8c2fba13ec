import type { Builder, RequestContext } from '../../src/index.ts';
import type { BackupRun } from './entities.ts';
import type { Backups } from './instance.ts';

export function registerBackups(builder: Builder, self: (context: RequestContext) => Backups) {
  const BackupRef = builder.objectRef<BackupRun>('Backup').implement({
    description: 'A backup `portico backup` took (docs/backups.md).',
    fields: (t) => ({
      finishedAt: t.field({ type: 'DateTime', resolve: (run) => run.finishedAt }),
      file: t.exposeString('file', {
        description: 'Where the archive was written, on the machine that took it.',
      }),
      bytes: t.field({ type: 'SafeInt', description: "The archive's size.", resolve: (run) => run.bytes }),
      rows: t.field({
        type: 'SafeInt',
        description: 'Rows of both databases it holds.',
        resolve: (run) => run.rows,
      }),
      blobs: t.field({
        type: 'SafeInt',
        description: 'Distinct blob contents it holds.',
        resolve: (run) => run.blobs,
      }),
      durationMs: t.exposeInt('durationMs'),
    }),
  });

  builder.queryField('lastBackup', (t) =>
    t.field({
      type: BackupRef,
      nullable: true,
      description: 'Admin. The last backup taken of this deployment; null when none was.',
      authScopes: { admin: true },
      resolve: (_root, _args, context) => self(context).last(),
    }),
  );
}
