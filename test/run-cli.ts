import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

/** The `portico` bin of package.json. */
export const BIN = join(import.meta.dirname, '..', 'bin', 'portico.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `portico <args>` to its end, in production mode with a secret unless `env` says otherwise.
 * A run still going after `timeoutMs` (a start that should have failed, say) is killed: code null.
 * `node` and `bin` replace this Node and the bin (another Node's view of them).
 */
export function runPortico(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
  { node = process.execPath, bin = BIN, timeoutMs = 20_000 } = {},
): Promise<Run> {
  const child = spawn(node, [bin, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORTICO_SECRET: 's'.repeat(40), ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return once(child, 'close').then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
}
