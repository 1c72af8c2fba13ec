import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Backend, createTestDatabase, TestClient } from './harness.ts';
import { type PorticoServer, startPortico } from './run-cli.ts';

/** One `portico start` process on loopback, and a client of it. */
export interface Instance extends PorticoServer {
  client(): TestClient;
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
  const server = await startPortico(cwd, { PORTICO_PUBLIC_URL: 'http://portico.test', ...env });
  return { ...server, client: () => new TestClient(server.url) };
}
