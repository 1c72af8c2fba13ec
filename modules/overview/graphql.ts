import type { Builder, DatabaseHealth, RequestContext } from '../../src/index.ts';
import { type GatewayStatus, HISTORY_MS, type Overview, SAMPLE_INTERVAL_MS } from './instance.ts';
import type { OverviewSample } from './sampler.ts';

export function registerOverview(builder: Builder, self: (context: RequestContext) => Overview) {
  const BackendEnum = builder.enumType('DatabaseBackend', {
    values: {
      SQLITE: { value: 'sqlite' },
      POSTGRES: { value: 'postgres' },
      REMOTE: { value: 'remote', description: 'Another Portico gateway (a data server), for the store.' },
    } as const,
  });

  const DatabaseStatusRef = builder.objectRef<DatabaseHealth>('DatabaseStatus').implement({
    description: 'Whether a database answers a trivial query now, as GET /ready asks it.',
    fields: (t) => ({
      backend: t.field({ type: BackendEnum, resolve: (status) => status.backend }),
      up: t.boolean({ resolve: (status) => status.problem === null }),
      reason: t.string({
        nullable: true,
        description: 'Why it does not answer; null when it does.',
        resolve: (status) => status.problem,
      }),
    }),
  });

  const GatewayStatusRef = builder.objectRef<GatewayStatus>('GatewayStatus').implement({
    description: 'Whether the databases this gateway uses answer.',
    fields: (t) => ({
      checkedAt: t.field({ type: 'DateTime', resolve: (status) => status.checkedAt }),
      systemDatabase: t.field({
        type: DatabaseStatusRef,
        description: 'Identity: users, sessions, keys, the audit log.',
        resolve: (status) => status.systemDatabase,
      }),
      store: t.field({
        type: DatabaseStatusRef,
        description: 'The business data: collections, blob metadata, leases.',
        resolve: (status) => status.store,
      }),
    }),
  });

  const SampleRef = builder.objectRef<OverviewSample>('GatewaySample').implement({
    description:
      "One sampling interval of this gateway's own counters (the series of GET /metrics). Rates are per second, latencies in seconds.",
    fields: (t) => ({
      at: t.field({ type: 'DateTime', description: 'When the interval ended.', resolve: (s) => s.at }),
      requestsPerSecond: t.exposeFloat('requestsPerSecond', { description: 'HTTP requests, every route.' }),
      graphqlErrorsPerSecond: t.exposeFloat('graphqlErrorsPerSecond', {
        description: 'GraphQL errors, whatever their extensions.code.',
      }),
      serverErrorsPerSecond: t.exposeFloat('serverErrorsPerSecond', {
        description: 'HTTP answers with a 5xx status, every route.',
      }),
      latencyP50Seconds: t.exposeFloat('latencyP50Seconds', {
        nullable: true,
        description:
          'The median time to response headers, interpolated within the histogram buckets; null without requests.',
      }),
      latencyP99Seconds: t.exposeFloat('latencyP99Seconds', {
        nullable: true,
        description: 'The 99th percentile of the same; null without requests.',
      }),
      webSocketSubscriptions: t.exposeInt('webSocketSubscriptions', {
        description: 'GraphQL subscriptions open over the WebSocket at the end of the interval.',
      }),
      sseSubscriptions: t.exposeInt('sseSubscriptions', {
        description: 'GraphQL subscriptions open over SSE at the end of the interval.',
      }),
      pubsubLagP99Seconds: t.exposeFloat('pubsubLagP99Seconds', {
        nullable: true,
        description:
          "The 99th percentile of pub/sub events' delay from another instance to this one; null without such events.",
      }),
    }),
  });

  const OverviewRef = builder.objectRef<Overview>('GatewayOverview').implement({
    description: "This gateway's health: its recent samples and whether its databases answer.",
    fields: (t) => ({
      intervalSeconds: t.int({
        description: 'The time between two samples.',
        resolve: () => SAMPLE_INTERVAL_MS / 1000,
      }),
      samples: t.field({
        type: [SampleRef],
        description: `The samples of the last ${HISTORY_MS / 60_000} minutes at most (since the gateway started), oldest first.`,
        resolve: (overview) => overview.sampler.history,
      }),
      status: t.field({ type: GatewayStatusRef, resolve: (overview) => overview.status() }),
    }),
  });

  const UpdateRef = builder
    .objectRef<{ sample: OverviewSample; overview: Overview }>('GatewayOverviewUpdate')
    .implement({
      description: 'A new sample, and the status as it is now.',
      fields: (t) => ({
        sample: t.field({ type: SampleRef, resolve: (update) => update.sample }),
        status: t.field({
          type: GatewayStatusRef,
          description: "The databases' status, asked at most once per interval for every admin watching.",
          resolve: (update) => update.overview.status(),
        }),
      }),
    });

  builder.queryField('gatewayOverview', (t) =>
    t.field({
      type: OverviewRef,
      description: "Admin: this gateway's own counters over the last minutes, and its databases' status.",
      authScopes: { admin: true },
      resolve: (_root, _args, context) => self(context),
    }),
  );

  builder.subscriptionField('gatewayOverviewSampled', (t) =>
    t.field({
      type: UpdateRef,
      description: "Admin: each new sample of this gateway's counters, with its databases' status.",
      authScopes: { admin: true },
      subscribe: (_root, _args, context) => self(context).samples(),
      resolve: (sample, _args, context) => ({ sample, overview: self(context) }),
    }),
  );
}
