import { type Environment, parseDatabaseUrl } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub.ts';
import type { GatewayMetrics } from '../telemetry/metrics.ts';
import { createLocalPubSub } from './local.ts';

export type PubSubAdapter = 'local' | 'ipc' | 'postgresql' | 'redis';

export interface OpenPubSubOptions {
  env: Pick<Environment, 'redisUrl' | 'systemDatabaseUrl' | 'worker'>;
  log: Logger;
  /** Where the delivery lag of other instances' events is observed (the brokered adapters). */
  metrics?: Pick<GatewayMetrics, 'pubsubLag'>;
}

/**
 * Which adapter a deployment uses: Redis when REDIS_URL is set, else PostgreSQL when the system
 * database is one, else the primary process's relay in a worker of `portico start --workers`.
 */
export function pubSubAdapterFor(env: OpenPubSubOptions['env']): PubSubAdapter {
  if (env.redisUrl) return 'redis';
  if (parseDatabaseUrl(env.systemDatabaseUrl).dialect === 'postgresql') return 'postgresql';
  return env.worker === undefined ? 'local' : 'ipc';
}

/**
 * The pub/sub of a gateway: over Redis (REDIS_URL), else over the system database when it is
 * PostgreSQL (LISTEN/NOTIFY, no extra service), else through the primary process (the workers of
 * one machine), else in process (one instance). Resolves once connected; rejects with a clear
 * message when the broker cannot be reached.
 */
export async function openPubSub({ env, log, metrics }: OpenPubSubOptions): Promise<PubSub> {
  const adapter = pubSubAdapterFor(env);
  const lag = metrics?.pubsubLag.labels(adapter);
  // The broker adapters are loaded only when chosen.
  if (adapter === 'redis') {
    const { openRedisPubSub } = await import('./redis.ts');
    return openRedisPubSub({ url: env.redisUrl!, log, lag });
  }
  if (adapter === 'postgresql') {
    const { openPostgresPubSub } = await import('./postgres.ts');
    return openPostgresPubSub({ url: env.systemDatabaseUrl, log, lag });
  }
  if (adapter === 'ipc') {
    const { openIpcPubSub } = await import('./ipc.ts');
    return openIpcPubSub({ log, lag });
  }
  return createLocalPubSub(log);
}

/** For the start's log line. */
export const PUBSUB_ADAPTER_DESCRIPTIONS: Record<PubSubAdapter, string> = {
  redis: 'Redis (REDIS_URL), for several instances',
  postgresql: 'PostgreSQL LISTEN/NOTIFY on the system database, for several instances',
  ipc: 'IPC via the primary process, for the workers of one machine',
  local: 'in process, for one instance',
};
