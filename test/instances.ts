import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  type Backend,
  createTestDatabase,
  freePort,
  type LogLine,
  TEST_SECRET,
  TestClient,
} from './harness.ts';

const BIN = new URL('../bin/portico.ts', import.meta.url).pathname;

/** One `portico start` process on loopback. */
export interface Instance {
  readonly url: string;
  readonly process: ChildProcess;
  readonly logs: LogLine[];
  client(): TestClient;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

export interface Cluster {
  readonly instances: Instance[];
  readonly databaseUrl: string;
  /** The bootstrap link's token, printed by the first instance. */
  bootstrapToken(): string;
  /** Stops every instance and drops the database. */
  close(): Promise<void>;
}

export interface ClusterOptions {
  count?: number;
  /** PostgreSQL (default), or one instance on an embedded SQLite file. */
  backend?: Backend;
  /** The configuration file's plain keys. */
  config?: Record<string, unknown>;
  /** Extra environment, e.g. REDIS_URL. */
  env?: Record<string, string>;
}

/**
 * Starts gateway processes side by side on one new PostgreSQL database (system and store) and one
 * data folder, as a deployment would run them. They start one after the other, so that only the
 * first brings the database schemas up to date.
 */
export async function startCluster({
  count = 2,
  config = {},
  env = {},
}: ClusterOptions = {}): Promise<Cluster> {
  const dataDir = await mkdtemp(join(tmpdir(), 'portico-cluster-'));
  const database = await createTestDatabase('postgres', dataDir);
  await writeFile(join(dataDir, 'portico.config.json'), JSON.stringify(config));
  const instances: Instance[] = [];
  const close = async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      instances.push(
        await startInstance(dataDir, {
          DATABASE_URL: database.url,
          PORTICO_DATA_DIR: dataDir,
          ...env,
        }),
      );
    }
  } catch (error) {
    await close();
    throw error;
  }
  return {
    instances,
    databaseUrl: database.url,
    bootstrapToken() {
      const line = instances[0]!.logs.findLast((entry) => entry.bootstrap === true);
      const token = line?.msg.match(/token=([\w-]+)/)?.[1];
      if (!token) throw new Error('No bootstrap link in the first instance’s log');
      return token;
    },
    close,
  };
}

async function startInstance(cwd: string, env: Record<string, string>): Promise<Instance> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'start'], {
    cwd,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      PORTICO_SECRET: TEST_SECRET,
      PORTICO_PUBLIC_URL: 'http://portico.test',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A test that fails before its cleanup must not leave a gateway running.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const listening = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as LogLine;
      logs.push(entry);
      if (entry.msg.startsWith('Portico listening')) resolve();
    });
    child.once('exit', (code) =>
      reject(new Error(`portico exited with ${code} before listening:\n${stderr.join('\n')}`)),
    );
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await listening.finally(() => clearTimeout(timeout));
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    process: child,
    logs,
    client: () => new TestClient(url),
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}
