import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ERROR_CODES } from '../errors.ts';

/** Seconds, from a millisecond (not one request) to a long lease wait. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Statements are mostly far below a millisecond. */
const STATEMENT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5];

/** Distinct operation names one gateway keeps as labels; later ones count as OTHER_OPERATION. */
export const MAX_OPERATION_NAMES = 100;
/** Longer operation names are cut to this many characters. */
export const MAX_OPERATION_NAME_LENGTH = 64;
/** The label of an operation without a name. Parentheses: no GraphQL name can be it. */
export const ANONYMOUS_OPERATION = '(anonymous)';
/** The label of the names past MAX_OPERATION_NAMES. */
export const OTHER_OPERATION = '(other)';
/** The label of a name no GraphQL operation can have (sent with a document that did not parse). */
export const INVALID_OPERATION = '(invalid)';

export type OperationType = 'query' | 'mutation' | 'subscription' | 'unknown';
export type Outcome = 'ok' | 'error';
/** How a subscription's events reach its client. */
export type Transport = 'websocket' | 'sse';
/** How a call to a remote store ended: answered, refused with a contract code, or not answered. */
export type RemoteOutcome = 'ok' | 'refused' | 'unavailable';

/** What `portico_database_up` reads of each database (`databasesHealth` in src/health.ts gives it). */
type DatabaseReadings = Record<'system' | 'store', { backend: string; problem: string | null }>;

const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const CONTRACT_CODES = new Set<string>(ERROR_CODES);

/**
 * A counter child whose increments are summed in a plain number and handed to the counter when it
 * is read (a scrape, the console): prom-client hashes the label set on every `inc`, which the
 * per-request counters would pay on every request.
 */
class Tally {
  #pending = 0;
  readonly #child: { inc(value: number): void };

  constructor(child: { inc(value: number): void }) {
    this.#child = child;
  }

  inc(amount = 1): void {
    this.#pending += amount;
  }

  flush(): void {
    if (this.#pending === 0) return;
    this.#child.inc(this.#pending);
    this.#pending = 0;
  }
}

/** A module's counter (`GatewayMetrics.counter`): its counts are tallied as the kernel's are. */
export interface TalliedCounter {
  /** The child of one label set: ask once (at setup), count on it as often as needed. */
  labels(...values: string[]): { inc(amount?: number): void };
  /** Counts on the counter without labels. */
  inc(amount?: number): void;
}

interface Timed {
  count: Tally;
  duration: { observe(seconds: number): void };
}

/** One operation label's children, by type and outcome (`typeIndex(type) * 2`, + 1 for an error). */
interface OperationSeries {
  readonly label: string;
  readonly children: (Timed | undefined)[];
}

const typeIndex = (type: OperationType) =>
  type === 'query' ? 0 : type === 'mutation' ? 1 : type === 'subscription' ? 2 : 3;

/**
 * The gateway's own counters, one set per gateway (two gateways in one process count apart). They
 * are always kept, because the console's overview reads them; `PORTICO_METRICS_TOKEN` only decides
 * whether `GET /metrics` shows them. Labels are bounded: route patterns, codes and names capped in
 * number, never an id, an email or a key. The recording methods keep each label set's child, so
 * counting allocates nothing once a label set has been seen, and the per-request counters are
 * tallied (`Tally`).
 */
export class GatewayMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'portico_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
    collect: () => this.#flush(this.#httpTallies),
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
    collect: () => this.#flush(this.#operationTallies),
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
    // Under `start --workers` (where the other metrics add up): 1 only when every worker's database answers.
    aggregator: 'min',
    // Asked at each read (a scrape, the console): the readiness probes, not a guess from past statements.
    collect: () => this.#probeDatabases(),
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
  readonly fenceRejections = new Counter({
    name: 'portico_lease_fence_rejections_total',
    help: 'Fenced writes (documents, blobs) refused because a newer lease token was granted',
    registers: [this.registry],
  });

  /** Operation name → its series, for the first MAX_OPERATION_NAMES names. */
  readonly #operationSeries = new Map<string, OperationSeries>();
  readonly #anonymous: OperationSeries = { label: ANONYMOUS_OPERATION, children: [] };
  readonly #other: OperationSeries = { label: OTHER_OPERATION, children: [] };
  readonly #invalid: OperationSeries = { label: INVALID_OPERATION, children: [] };
  readonly #operationTallies: Tally[] = [];
  /** Route → method → the duration child and the count of each status. */
  readonly #httpChildren = new Map<
    string,
    Map<string, { duration: { observe(seconds: number): void }; byStatus: Map<number, Tally> }>
  >();
  readonly #httpTallies: Tally[] = [];
  readonly #errorChildren = new Map<string, { inc(): void }>();
  readonly #openChildren = {
    websocket: this.subscriptions.labels('websocket'),
    sse: this.subscriptions.labels('sse'),
  };
  #databases: (() => Promise<DatabaseReadings>) | undefined;
  /** The probe under way: reads at the same moment share it. */
  #probing: Promise<void> | undefined;

  /**
   * A module's counter, kept in this gateway's registry: its counts are summed in plain numbers
   * and handed to prom-client when it is read, as the kernel's per-request counters are.
   */
  counter<Label extends string = never>(
    configuration: Omit<ConstructorParameters<typeof Counter<Label>>[0], 'registers' | 'collect'>,
  ): TalliedCounter {
    const tallies: Tally[] = [];
    const counter = new Counter({
      ...configuration,
      registers: [this.registry],
      collect: () => this.#flush(tallies),
    });
    const tallied = (child: { inc(value: number): void }) => {
      const tally = new Tally(child);
      tallies.push(tally);
      return tally;
    };
    let unlabelled: Tally | undefined;
    return {
      labels: (...values) => tallied(counter.labels(...(values as never[]))),
      inc: (amount = 1) => {
        unlabelled ??= tallied({ inc: (value) => counter.inc(value) });
        unlabelled.inc(amount);
      },
    };
  }

  /** One HTTP response: `route` is a pattern (a module route's `/blobs/:id`), never the path itself. */
  httpRequest(method: string, route: string, status: number, seconds: number | undefined): void {
    const methodLabel = KNOWN_METHODS.has(method) ? method : 'OTHER';
    let byMethod = this.#httpChildren.get(route);
    if (!byMethod) {
      byMethod = new Map();
      this.#httpChildren.set(route, byMethod);
    }
    let children = byMethod.get(methodLabel);
    if (!children) {
      children = { duration: this.httpDuration.labels(methodLabel, route), byStatus: new Map() };
      byMethod.set(methodLabel, children);
    }
    let count = children.byStatus.get(status);
    if (!count) {
      count = new Tally(this.httpRequests.labels(methodLabel, route, String(status)));
      children.byStatus.set(status, count);
      this.#httpTallies.push(count);
    }
    count.inc();
    if (seconds !== undefined) children.duration.observe(seconds);
  }

  /**
   * One GraphQL operation. `name` is the operation's name (null: anonymous); the first
   * MAX_OPERATION_NAMES distinct names are labels, later ones count as OTHER_OPERATION.
   */
  operation(name: string | null | undefined, type: OperationType, outcome: Outcome, seconds: number): void {
    const { label, children } = this.#seriesOf(name);
    const index = typeIndex(type) * 2 + (outcome === 'ok' ? 0 : 1);
    let timed = children[index];
    if (!timed) {
      timed = {
        count: new Tally(this.operations.labels(label, type, outcome)),
        duration: this.operationDuration.labels(label, type, outcome),
      };
      children[index] = timed;
      this.#operationTallies.push(timed.count);
    }
    timed.count.inc();
    timed.duration.observe(seconds);
  }

  /**
   * Counts the errors of a result as it leaves, by their contract code (`withContractCodes`). A
   * code outside the contract, on an event of a stream (whose errors have a path), counts as
   * INTERNAL_SERVER_ERROR, which is what `withContractCodes` makes of it.
   */
  countErrors(
    errors: readonly { readonly extensions?: Readonly<Record<string, unknown>> }[] | undefined,
  ): void {
    if (!errors) return;
    for (const error of errors) {
      const code = error.extensions?.code;
      this.#errorChild(
        typeof code === 'string' && CONTRACT_CODES.has(code) ? code : 'INTERNAL_SERVER_ERROR',
      ).inc();
    }
  }

  /**
   * The subscription's events, counted in `portico_subscriptions_open` from now until the stream
   * ends, fails or its consumer returns (a client that went away). `onEvent` sees each event.
   * Not an async generator: its `return()` would wait for the pending `next()`, which may be an
   * event that never comes.
   */
  countOpen<T>(
    stream: AsyncIterable<T>,
    transport: Transport,
    onEvent?: (event: T) => void,
  ): AsyncIterableIterator<T> {
    const source = stream[Symbol.asyncIterator]();
    const open = this.#openChildren[transport];
    let counted = true;
    open.inc();
    const close = () => {
      if (!counted) return;
      counted = false;
      open.dec();
    };
    const iterator: AsyncIterableIterator<T> = {
      next: () =>
        source.next().then(
          (step) => {
            if (step.done) close();
            else onEvent?.(step.value);
            return step;
          },
          (error: unknown) => {
            close();
            throw error;
          },
        ),
      return: (value?: unknown) => {
        close();
        return source.return?.(value) ?? Promise.resolve({ done: true, value: undefined });
      },
      throw: (error?: unknown) => {
        close();
        return source.throw?.(error) ?? Promise.reject(error);
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * What `portico_database_up` reports: `probe` is asked at each read of the gauge (a scrape, the
   * console's overview), so a store an admin switched to is reported under its own backend.
   */
  watchDatabases(probe: () => Promise<DatabaseReadings>): void {
    this.#databases = probe;
  }

  #seriesOf(name: string | null | undefined): OperationSeries {
    if (!name) return this.#anonymous;
    const known = this.#operationSeries.get(name);
    if (known) return known;
    if (!GRAPHQL_NAME.test(name)) return this.#invalid;
    if (this.#operationSeries.size >= MAX_OPERATION_NAMES) return this.#other;
    const label =
      name.length > MAX_OPERATION_NAME_LENGTH ? `${name.slice(0, MAX_OPERATION_NAME_LENGTH)}…` : name;
    const series = { label, children: [] };
    this.#operationSeries.set(name, series);
    return series;
  }

  #flush(tallies: readonly Tally[]): void {
    for (const tally of tallies) tally.flush();
  }

  #errorChild(code: string) {
    let child = this.#errorChildren.get(code);
    if (!child) {
      child = this.errors.labels(code);
      this.#errorChildren.set(code, child);
    }
    return child;
  }

  async #probeDatabases(): Promise<void> {
    const probe = this.#databases;
    if (!probe) return;
    this.#probing ??= probe()
      .then((health) => {
        // A switched store leaves its old backend's series behind otherwise.
        this.databaseUp.reset();
        for (const [database, { backend, problem }] of Object.entries(health))
          this.databaseUp.labels(database, backend).set(problem === null ? 1 : 0);
      })
      .finally(() => {
        this.#probing = undefined;
      });
    await this.#probing;
  }
}
