import type { Logger } from '../../logger.ts';
import type { GatewayMetrics } from '../../telemetry/metrics.ts';
import type { StoreAbout } from '../backend.ts';
import { RemoteStore } from './backend.ts';
import { RemoteConnection } from './connection.ts';
import { RemoteEvents } from './events.ts';
import type { KeyOptions } from './key.ts';
import { describeRemoteUrl, parseRemoteStoreUrl } from './protocol.ts';

export { RemoteStore } from './backend.ts';

export interface RemoteStoreOptions {
  /** `portico+http(s)://host[:port][/base]`. */
  url: string;
  source: StoreAbout['source'];
  key: Omit<KeyOptions, 'server' | 'log'>;
  log: Logger;
  /** This deployment's gateway id (`identity.ts`), which names it to the data server. */
  gateway: () => Promise<string>;
  /**
   * False at start: the store answers SERVICE_UNAVAILABLE until `serve` has checked the data
   * server. True for a switch, which checks it before it makes the store current.
   */
  serving: boolean;
  /** Where the calls to the data server are timed. */
  metrics?: Pick<GatewayMetrics, 'remoteStoreCalls'>;
}

/** The store of the Portico at `url` (the data server). Opens no connection until it is used. */
export function openRemoteStore({ url, source, key, log, gateway, serving, metrics }: RemoteStoreOptions) {
  const server = parseRemoteStoreUrl(url);
  const remoteLog = log.child({ store: server.origin });
  const connection = new RemoteConnection(
    server,
    { ...key, server: server.href, log: remoteLog },
    gateway,
    remoteLog,
    metrics?.remoteStoreCalls,
  );
  const events = new RemoteEvents(connection, remoteLog);
  const about: StoreAbout = { kind: 'remote', url: describeRemoteUrl(server), source, since: new Date() };
  const backend = new RemoteStore(connection, events, about, { serving });
  if (serving) events.start();
  return { backend, connection, close: async () => backend.close() };
}
