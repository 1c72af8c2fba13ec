import { defineModule } from '../../src/index.ts';
import blobs from '../blobs/index.ts';
import store from '../store/index.ts';
import { backupCommands } from './commands.ts';
import { BackupRunSchema } from './entities.ts';
import { registerBackups } from './graphql.ts';
import { Backups } from './instance.ts';

/**
 * `portico backup`, `restore` and `verify` (HTTP.md, "Command line (v2)"; docs/backups.md): one
 * archive of the system database, the store and the blob bytes, taken online, in a format that
 * does not depend on the database kind; and `lastBackup`, the console's Backups line.
 */
export default defineModule({
  name: 'backups',
  dependsOn: ['blobs', 'store'],
  entities: { system: [BackupRunSchema] },
  setup: (runtime, use) => new Backups(runtime, use(blobs), use(store)),
  graphql: registerBackups,
  commands: backupCommands,
});
