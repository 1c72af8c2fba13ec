import type { BlockList } from 'node:net';
import type { TracingSettings } from './telemetry/tracing-settings.ts';

export type Mode = 'development' | 'production';

/**
 * The parsed configuration file. Empty in the kernel: every module adds the keys
 * it owns by interface merging (`declare module '.../src/config.ts'`).
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by modules
export interface Settings {}

/** What a configuration file may hold: the input form of {@link Settings}, also extended by modules. */
// biome-ignore lint/suspicious/noEmptyInterface: extended by modules
export interface ConfigFile {}

/** Everything read from the environment (docs/configuration.md, "Environment"). */
export interface Environment {
  mode: Mode;
  host: string;
  port: number;
  publicUrl: string;
  /** iron-session passwords, newest first. */
  secrets: string[];
  dataDir: string;
  databaseUrl: string;
  systemDatabaseUrl: string;
  redisUrl: string | undefined;
  /** `BLOB_STORAGE_URL`: where blob bytes live (`file:<folder>` by default, or `s3://…`). */
  blobStorageUrl: string;
  /** The standard AWS variables, for S3 blob storage; absent, the AWS SDK's own chain applies. */
  aws: {
    accessKeyId: string | undefined;
    secretAccessKey: string | undefined;
    sessionToken: string | undefined;
    region: string | undefined;
  };
  /** `PORTICO_REMOTE_API_KEY`: the key for a remote store (`portico+http(s)://`). */
  remoteApiKey: string | undefined;
  /** `PORTICO_REMOTE_AUTH_URL`: where the device flow for that key runs, when not on the data server. */
  remoteAuthUrl: string | undefined;
  /** Reverse proxies whose `X-Forwarded-For` names the client; null: the header is ignored. */
  trustedProxies: BlockList | null;
  /** The standard `OTEL_*` variables' traces (docs/observability.md, "Traces"); null: tracing is off. */
  tracing: TracingSettings | null;
  /** `PORTICO_METRICS_TOKEN`: the bearer token of `GET /metrics`; unset, that endpoint is off (404). */
  metricsToken: string | undefined;
  /** `PORTICO_WORKERS`: how many processes `portico start` runs on the port (`--workers` overrides it). */
  workers: number;
  /**
   * Which worker of `portico start --workers` this process is, 1 to `workers` (a replacement
   * takes the number of the worker it replaces); undefined outside such a worker.
   */
  worker?: number;
}

/** A reason the gateway cannot start that the operator can fix: the CLI prints it as is, without a stack. */
export class StartupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** Every problem found in the configuration, each prefixed by its path. */
export class ConfigError extends StartupError {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`Invalid configuration:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export type DatabaseTarget = { dialect: 'sqlite'; file: string } | { dialect: 'postgresql'; url: string };

/**
 * What a database URL names (docs/configuration.md, "Environment"): `postgres://…` or `postgresql://…` for
 * PostgreSQL; `sqlite:<path>`, `file:<path>` or a bare path for SQLite. Throws, saying why, for
 * anything else: a mistyped URL must not become a SQLite file named after it.
 */
export function parseDatabaseUrl(url: string): DatabaseTarget {
  if (/^postgres(ql)?:\/\//i.test(url)) return { dialect: 'postgresql', url };
  if (/^portico\+/i.test(url)) {
    throw new Error(
      'a remote Portico (portico+http(s)://) can hold the store (DATABASE_URL) only, not a database',
    );
  }
  // Two letters at least: `C:\…` is a Windows path, not a scheme.
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(url)?.[1];
  if (scheme && !/^(sqlite|file)$/i.test(scheme)) {
    throw new Error(`unknown scheme "${scheme}:"; expected sqlite:<path>, a file path, or postgres://…`);
  }
  const file = url.replace(/^(sqlite|file):(\/\/)?/i, '');
  if (!file) throw new Error(`"${url}" names no file`);
  return { dialect: 'sqlite', file };
}
