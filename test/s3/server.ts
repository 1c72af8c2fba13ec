import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { RequestLog } from './service.ts';

export type { RequestLog } from './service.ts';

export interface S3ServerOptions {
  /** Where the buckets live; by default a temporary folder, removed by `close()`. */
  root?: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** By default a free one, kept across `stop()` and `start()`. */
  port?: number;
}

export interface S3Server {
  /** `http://127.0.0.1:<port>`, for a client with `forcePathStyle: true`. */
  readonly endpoint: string;
  readonly port: number;
  readonly root: string;
  /** Every request answered, in order, across restarts. */
  readonly requests: RequestLog[];
  /** Kills the process (SIGKILL): connections reset, new ones refused, as when a store goes away. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes the temporary folder it made. */
  close(): Promise<void>;
}

const PROCESS = join(import.meta.dirname, 'process.ts');

/**
 * A strict S3-compatible server in a child process, on 127.0.0.1, for tests of code that talks to
 * S3: it checks SigV4 on every request, decodes aws-chunked bodies and verifies checksums as S3
 * does (see docs/development.md). Resolves once it listens.
 */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'portico-s3-')));
  const requests: RequestLog[] = [];
  let port = options.port ?? 0;
  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill('SIGKILL');

  const start = async () => {
    if (child) throw new Error('The S3 server is running already');
    const config = {
      root,
      port,
      region: options.region,
      credentials: { [options.accessKeyId]: options.secretAccessKey },
    };
    const started = spawn(process.execPath, [PROCESS], {
      env: { PATH: process.env.PATH ?? '', PORTICO_S3_SERVER: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    process.once('exit', killOnExit);
    const stderr: string[] = [];
    createInterface({ input: started.stderr! }).on('line', (line) => {
      stderr.push(line);
      process.stderr.write(`[test S3 server] ${line}\n`);
    });
    const exited = once(started, 'exit');
    void exited.then(() => {
      if (child !== started) return;
      child = undefined;
      process.off('exit', killOnExit);
    });
    const listening = new Promise<number>((resolve, reject) => {
      createInterface({ input: started.stdout! }).on('line', (line) => {
        if (!line.startsWith('{')) return;
        const message = JSON.parse(line) as { listening?: number; request?: RequestLog };
        if (message.request) requests.push(message.request);
        if (message.listening !== undefined) resolve(message.listening);
      });
      void exited.then(([code]) =>
        reject(new Error(`The S3 server exited with ${code} before listening:\n${stderr.join('\n')}`)),
      );
    });
    port = await listening;
  };

  const stop = async () => {
    const running = child;
    if (!running) return;
    child = undefined;
    process.off('exit', killOnExit);
    if (running.exitCode === null && running.signalCode === null) {
      const exited = once(running, 'exit');
      running.kill('SIGKILL');
      await exited;
    }
  };

  await start();
  return {
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    root,
    requests,
    stop,
    start,
    async close() {
      await stop();
      if (options.root === undefined) await rm(root, { recursive: true, force: true });
    },
  };
}
