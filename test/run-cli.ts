import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort, type LogLine, TEST_SECRET } from './harness.ts';

/** The `portico` bin of package.json. */
export const BIN = join(import.meta.dirname, '..', 'bin', 'portico.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Another Node and bin than this one's (another Node's view of them). */
  node?: string;
  bin?: string;
  /** A run still going after this long (a start that should have failed, say) is killed: code null. */
  timeoutMs?: number;
  /** Sees stdout as it grows (to read what the command prints before it ends). */
  onStdout?: (stdout: string) => void;
}

/** `portico <args>` in `cwd`, in production mode with a secret unless `env` says otherwise. */
function spawnPortico(
  args: string[],
  cwd: string,
  env: Record<string, string>,
  { node = process.execPath, bin = BIN }: RunOptions,
): ChildProcessWithoutNullStreams {
  return spawn(node, [bin, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORTICO_SECRET: TEST_SECRET, ...env },
  });
}

/** Runs `portico <args>` to its end (see `spawnPortico`). */
export function runPortico(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
  options: RunOptions = {},
): Promise<Run> {
  const child = spawnPortico(args, cwd, env, options);
  const run: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => {
    run.stdout += chunk;
    options.onStdout?.(run.stdout);
  });
  child.stderr.on('data', (chunk) => {
    run.stderr += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  return once(child, 'close').then(([code]) => {
    clearTimeout(timer);
    return { ...run, code: code as number | null };
  });
}

/** A `portico start` process listening on loopback. */
export interface PorticoServer {
  readonly url: string;
  readonly process: ChildProcessWithoutNullStreams;
  /** Its log lines, as they come. */
  readonly logs: LogLine[];
  /** SIGTERM (after SIGCONT, for a paused one), then SIGKILL if it has not exited within 5 s; its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `portico start` (with `options`, such as `--workers 2`) in `cwd` on a free loopback port
 * (see `spawnPortico` for `env`) and resolves once it listens. One that exits first rejects with
 * its stderr; one not listening within 60 s is killed. It never outlives the test process.
 */
export async function startPortico(
  cwd: string,
  env: Record<string, string> = {},
  options: string[] = [],
): Promise<PorticoServer> {
  const port = await freePort();
  const child = spawnPortico(
    ['start', ...options],
    cwd,
    { HOST: '127.0.0.1', PORT: String(port), ...env },
    {},
  );
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = once(child, 'exit').then(([code]) => {
    process.off('exit', killOnExit);
    return code as number | null;
  });
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  const listening = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as LogLine;
      logs.push(entry);
      if (entry.msg.startsWith('Portico listening')) resolve();
    });
    void exited.then((code) =>
      reject(new Error(`portico exited with ${code} before listening:\n${stderr.join('\n')}`)),
    );
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await listening.finally(() => clearTimeout(timeout));
  return {
    url: `http://127.0.0.1:${port}`,
    process: child,
    logs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
      }
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
  };
}
