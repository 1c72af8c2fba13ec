import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isDatabaseUnavailable, type ModuleCommand } from '../../src/index.ts';
import { ArchiveProblem, readArchive } from './archive.ts';
import { takeBackup } from './backup.ts';
import type { Backups } from './instance.ts';
import { formatBytes, type Progress, progressOn } from './progress.ts';
import { RestoreRefused, restoreBackup } from './restore.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);
const complain = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The archive named on the command line, and its options; null (after saying why) when they are wrong. */
function argumentsOf(args: string[], usage: string, withForce = false) {
  try {
    const { positionals, values } = parseArgs({
      args,
      allowPositionals: true,
      options: withForce ? { force: { type: 'boolean' } } : {},
    });
    if (positionals.length === 1) return { file: positionals[0]!, force: values.force === true };
  } catch (error) {
    complain((error as Error).message);
  }
  complain(`Usage: ${usage}`);
  return null;
}

/**
 * Runs a command's work with progress bars; what stops it for a reason the operator can act on (a
 * damaged archive, a non-empty target, a database or storage away, a disk full) is one line on
 * standard error and exit code 1. Anything else is a bug and keeps its stack.
 */
async function withProgress(what: (progress: Progress) => Promise<string>): Promise<number> {
  const progress = progressOn();
  try {
    const summary = await what(progress);
    progress.stop();
    say(summary);
    return 0;
  } catch (error) {
    progress.stop();
    const operators =
      error instanceof ArchiveProblem ||
      error instanceof RestoreRefused ||
      isDatabaseUnavailable(error) ||
      typeof (error as NodeJS.ErrnoException).code === 'string' ||
      (error as { name?: string }).name === 'PorticoError';
    if (!operators) throw error;
    complain((error as Error).message);
    return 1;
  }
}

export const backupCommands: Record<string, ModuleCommand<Backups>> = {
  backup: {
    description:
      'Write one consistent archive of both databases and the blob bytes to <file>, while the gateway serves.',
    async run(backups, args) {
      const parsed = argumentsOf(args, 'portico backup <file>');
      if (!parsed) return 2;
      const { storage } = await backups.open();
      return withProgress(async (progress) => {
        const taken = await takeBackup(backups.runtime, storage, parsed.file, progress);
        const leftOut =
          taken.leftOut > 0 ? `; ${taken.leftOut} blob contents deleted while it ran were left out` : '';
        return `backup written to ${taken.file}: ${taken.rows} rows, ${taken.blobs} blob contents (${formatBytes(taken.blobBytes)}), ${formatBytes(taken.bytes)} in ${seconds(taken.durationMs)}${leftOut}`;
      });
    },
  },
  restore: {
    description: 'Restore an archive into this (empty) deployment; --force replaces what it holds.',
    async run(backups, args) {
      const parsed = argumentsOf(args, 'portico restore <file> [--force]', true);
      if (!parsed) return 2;
      const { storage } = await backups.open();
      return withProgress(async (progress) => {
        const restored = await restoreBackup(
          backups.runtime,
          storage,
          parsed.file,
          { force: parsed.force },
          progress,
        );
        await backups.keepStoreChoice();
        return `restored ${parsed.file} (taken ${restored.summary.header.createdAt}): ${restored.rows} rows, ${restored.blobs} blob contents (${formatBytes(restored.blobBytes)}) in ${seconds(restored.durationMs)}`;
      });
    },
  },
  verify: {
    description: 'Check an archive (every checksum, row and blob) without restoring it.',
    async runAlone(args) {
      const parsed = argumentsOf(args, 'portico verify <file>');
      if (!parsed) return 2;
      const began = Date.now();
      return withProgress(async (progress) => {
        const { size } = await stat(parsed.file);
        const summary = await readArchive(parsed.file, { progress: progress.bar('checking', size, 'bytes') });
        const rows = Object.values(summary.manifest.rows).reduce((sum, count) => sum + count, 0);
        const { system, store, blobStorage } = summary.header.source;
        return `${parsed.file} is sound: taken ${summary.header.createdAt} from ${system} + ${store} + ${blobStorage}; ${rows} rows, ${summary.manifest.blobs.count} blob contents (${formatBytes(summary.manifest.blobs.bytes)}); checked in ${seconds(Date.now() - began)}`;
      });
    },
  },
};
