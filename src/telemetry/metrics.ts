import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds, from a millisecond (not one request) to a long lease wait. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Statements are mostly far below a millisecond. */
const STATEMENT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5];

/**
 * The gateway's own counters, one set per gateway (two gateways in one process count apart). They
 * are always kept, because the console's overview reads them; `PORTICO_METRICS_TOKEN` only decides
 * whether `GET /metrics` shows them. Labels are bounded: route patterns, codes and names capped in
 * number, never an id, an email or a key.
 */
export class GatewayMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'portico_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'portico_http_request_duration_seconds',
    help: 'Time from a request to its response headers, by method and route pattern',
    labelNames: ['method', 'route'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly operations = new Counter({
    name: 'portico_graphql_operations_total',
    help: 'GraphQL operations run, by operation name (capped), type and outcome (ok or error)',
    labelNames: ['operation_name', 'operation_type', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly operationDuration = new Histogram({
    name: 'portico_graphql_operation_duration_seconds',
    help: 'Time to run a GraphQL operation, by operation name (capped), type and outcome',
    labelNames: ['operation_name', 'operation_type', 'outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'portico_graphql_errors_total',
    help: 'GraphQL errors answered, by extensions.code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly subscriptions = new Gauge({
    name: 'portico_subscriptions_open',
    help: 'Open GraphQL subscriptions, by transport (websocket, sse)',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly databaseUp = new Gauge({
    name: 'portico_database_up',
    help: '1 while the database answers, else 0: the system database and the store (whatever its backend)',
    labelNames: ['database', 'backend'] as const,
    registers: [this.registry],
  });
  readonly statementDuration = new Histogram({
    name: 'portico_database_statement_duration_seconds',
    help: 'Time of one SQL statement, by database and dialect',
    labelNames: ['database', 'dialect'] as const,
    buckets: STATEMENT_BUCKETS,
    registers: [this.registry],
  });
  readonly remoteStoreCalls = new Histogram({
    name: 'portico_remote_store_call_duration_seconds',
    help: 'Time of one call to a remote store (a data server), by outcome',
    labelNames: ['outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly pubsubLag = new Histogram({
    name: 'portico_pubsub_delivery_lag_seconds',
    help: 'Time from an event published on one instance to its delivery on this one',
    labelNames: ['adapter'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  /** A module's counter, kept in this gateway's registry. */
  counter<Label extends string = never>(
    configuration: ConstructorParameters<typeof Counter<Label>>[0],
  ): Counter<Label> {
    return new Counter({ ...configuration, registers: [this.registry] });
  }

  /** A module's histogram (seconds unless its name says otherwise), kept in this gateway's registry. */
  histogram<Label extends string = never>(
    configuration: ConstructorParameters<typeof Histogram<Label>>[0],
  ): Histogram<Label> {
    return new Histogram({ buckets: DURATION_BUCKETS, ...configuration, registers: [this.registry] });
  }

  /** A module's gauge, kept in this gateway's registry. */
  gauge<Label extends string = never>(
    configuration: ConstructorParameters<typeof Gauge<Label>>[0],
  ): Gauge<Label> {
    return new Gauge({ ...configuration, registers: [this.registry] });
  }
}
