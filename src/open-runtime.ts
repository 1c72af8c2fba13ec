import { openDatabases } from './db.ts';
import { serviceUnavailable } from './errors.ts';
import { databasesHealth } from './health.ts';
import { LiveCredentials } from './live.ts';
import type { LoadedConfig } from './load-config.ts';
import type { Logger } from './logger.ts';
import { ModuleSet } from './module-instances.ts';
import { openPubSub, pubSubAdapterFor } from './pubsub/open.ts';
import type { Runtime } from './runtime.ts';
import type { StoreBackend } from './store/backend.ts';
import { describeUrl, openInitialStore, openStoreAt } from './store/open.ts';
import { gatewayId } from './store/remote/identity.ts';
import { createStoreSwitch, SwitchingStore } from './store/switch.ts';
import { GatewayMetrics } from './telemetry/metrics.ts';
import { tracePublishes } from './telemetry/tracing.ts';
import { type Clock, systemClock } from './timers.ts';

/** What aborts each runtime's `stopping` signal. */
const stoppers = new WeakMap<Runtime, AbortController>();

/** A runtime as the kernel holds it: with the module set it starts and stops. */
export type OpenRuntime = Runtime & {
  readonly instances: ModuleSet;
  readonly store: SwitchingStore;
  /** Prepares DATABASE_URL's store (the modules' `prepareStore`) and serves it: see `InitialStore.serve`. */
  serveStore(): Promise<void>;
  /** Closes the current store and DATABASE_URL's. */
  closeStore(): Promise<void>;
};

/**
 * Opens the databases (bringing their schemas up to date) and the pub/sub, and sets the modules
 * up; starts none. `config.modules` come composed (`composeModules`). `deferUnreachableStore`:
 * see `openDatabases`.
 */
export async function openRuntime(
  config: LoadedConfig,
  log: Logger,
  clock: Clock = systemClock,
  { deferUnreachableStore = false } = {},
): Promise<OpenRuntime> {
  const { env, settings, modules } = config;
  // Before the databases and the pub/sub, which count into it.
  const metrics = new GatewayMetrics();
  const db = await openDatabases({ env, modules, log, deferUnreachableStore, metrics });
  try {
    const broker = await openPubSub({ env, log, metrics });
    // With tracing on, a publish is a span of the request that makes it.
    const pubsub = env.tracing ? tracePublishes(broker, pubSubAdapterFor(env)) : broker;
    const stopper = new AbortController();
    const live = new LiveCredentials(log);
    let identity: Promise<string> | undefined;
    const gateway = () => {
      identity ??= gatewayId(db.system.em.fork()).catch((error: unknown) => {
        identity = undefined;
        throw error;
      });
      return identity;
    };
    const opened = openInitialStore(env, db, pubsub, log.child({ db: 'store' }), gateway, metrics);
    // Kept open while other stores are current, for a reset; closed with the runtime.
    const initial = { backend: opened.backend, close: async () => {} };
    const store = new SwitchingStore(initial, log, metrics.fenceRejections);
    const instances = new ModuleSet(modules);
    const runtime: OpenRuntime = {
      env,
      settings,
      modules,
      instances,
      db,
      store,
      storeSwitch: createStoreSwitch({
        store,
        initial,
        databaseUrl: env.databaseUrl,
        open: (url, source) =>
          openStoreAt(url, source, { pubsub, log: log.child({ db: 'store' }), env, gateway, metrics }),
        prepare: (backend) => instances.prepareStore(backend),
        unavailable: (reason) => serviceUnavailable(`The store does not answer: ${reason}`),
        describe: describeUrl,
      }),
      pubsub,
      live,
      log,
      metrics,
      clock,
      stopping: stopper.signal,
      serveStore: () => opened.serve((backend: StoreBackend) => instances.prepareStore(backend)),
      closeStore: async () => {
        await store.close();
        await opened.close();
      },
    };
    stoppers.set(runtime, stopper);
    // The readiness probes: GET /ready asks the same.
    metrics.watchDatabases(() => databasesHealth(db, store));
    runtime.instances.setUp(runtime);
    return runtime;
  } catch (error) {
    await db.close();
    throw error;
  }
}

/** Aborts the runtime's `stopping` signal: long waits end and answer now. */
export function beginStopping(runtime: Runtime): void {
  stoppers.get(runtime)?.abort();
}

/** Closes what `openRuntime` opened: the pub/sub (its last events go out), then the databases. */
export async function closeRuntime(runtime: OpenRuntime): Promise<void> {
  beginStopping(runtime);
  try {
    await runtime.pubsub.close();
  } finally {
    try {
      await runtime.closeStore();
    } finally {
      await runtime.db.close();
    }
  }
}
