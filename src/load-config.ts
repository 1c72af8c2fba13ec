import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { parseTrustedProxies } from './client-address.ts';
import {
  ConfigError,
  type ConfigFile,
  type Environment,
  type Mode,
  parseDatabaseUrl,
  type Settings,
} from './config.ts';
import type { PorticoModule } from './module.ts';
import { parseBlobStorageUrl } from './store/blob-storage.ts';
import { isRemoteStoreUrl, parseRemoteStoreUrl } from './store/remote/protocol.ts';
import { tracingSettings } from './telemetry/tracing-settings.ts';
import { parseWorkerCount, WORKER_COUNT_EXPECTED, workerNumber } from './workers.ts';

/** A `portico.config.ts`/`.mjs` default export: the plain keys, plus modules written in code. */
export interface PorticoConfig extends ConfigFile {
  /** Extra modules (and login methods) to compose after the built-in ones. */
  modules?: PorticoModule[];
}

export const defineConfig = (config: PorticoConfig): PorticoConfig => config;

export interface LoadedConfig {
  env: Environment;
  settings: Settings;
  /**
   * The modules as listed: the built-in ones, then the configuration file's. `composeModules`
   * checks and orders them; the gateway and the CLI commands take them composed.
   */
  modules: PorticoModule[];
  /** The file the settings came from, if any. */
  source: string | undefined;
}

export const MIN_SECRET_LENGTH = 32;
/** A shorter metrics token could be guessed by trying: whoever scrapes is given a long random one. */
export const MIN_METRICS_TOKEN_LENGTH = 16;
const CONFIG_FILE_NAMES = ['portico.config.ts', 'portico.config.mjs', 'portico.config.json'];

const optionalString = z
  .string()
  .trim()
  .transform((value) => value || undefined)
  .optional();

const environmentSchema = z.object({
  NODE_ENV: optionalString,
  HOST: optionalString,
  PORT: z.coerce.number().int().min(0).max(65535).optional(),
  PORTICO_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  PORTICO_SECRET: optionalString,
  PORTICO_DATA_DIR: optionalString,
  DATABASE_URL: optionalString,
  SYSTEM_DATABASE_URL: optionalString,
  REDIS_URL: optionalString,
  PORTICO_REMOTE_API_KEY: optionalString,
  BLOB_STORAGE_URL: optionalString,
  AWS_ACCESS_KEY_ID: optionalString,
  AWS_SECRET_ACCESS_KEY: optionalString,
  AWS_SESSION_TOKEN: optionalString,
  AWS_REGION: optionalString,
  PORTICO_REMOTE_AUTH_URL: optionalString,
  PORTICO_CONFIG: optionalString,
  PORTICO_TRUSTED_PROXIES: optionalString,
  PORTICO_METRICS_TOKEN: optionalString,
  PORTICO_WORKERS: optionalString,
});

export interface LoadConfigOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** The modules every gateway has; the configuration file may add more. */
  builtinModules: PorticoModule[];
  /** False for commands that never seal anything (print-schema): no secret is required or generated. */
  needSecret?: boolean;
}

/**
 * Reads the environment and the configuration file and validates everything at once, the settings
 * against the modules' schemas. Throws {@link ConfigError} listing every problem.
 */
export async function loadConfig({
  cwd = process.cwd(),
  env = process.env,
  builtinModules,
  needSecret = true,
}: LoadConfigOptions): Promise<LoadedConfig> {
  const issues: string[] = [];
  const parsedEnv = environmentSchema.safeParse(env);
  if (!parsedEnv.success) issues.push(...formatIssues(parsedEnv.error.issues));
  const vars = parsedEnv.success ? parsedEnv.data : ({} as z.output<typeof environmentSchema>);

  const source = locateConfigFile(cwd, vars.PORTICO_CONFIG, issues);
  const raw = source ? await readConfigFile(source, issues) : {};
  const { modules: extraModules = [], ...plain } = raw as PorticoConfig & Record<string, unknown>;
  if (source?.endsWith('.json') && 'modules' in (raw as object)) {
    issues.push('modules: modules are code; declare them in portico.config.ts or .mjs');
  }

  const modules = [...builtinModules, ...(Array.isArray(extraModules) ? extraModules : [])];

  const schema = settingsSchema(modules, issues);
  const parsed = schema.safeParse(plain);
  if (!parsed.success) issues.push(...formatIssues(parsed.error.issues));
  const settings = (parsed.success ? parsed.data : {}) as unknown as Settings;
  if (parsed.success) {
    for (const module of modules) issues.push(...(module.checkConfig?.(settings, modules) ?? []));
  }

  const mode: Mode = vars.NODE_ENV === 'production' ? 'production' : 'development';
  const dataDir = resolve(cwd, vars.PORTICO_DATA_DIR ?? '.portico-data');
  const secrets = (vars.PORTICO_SECRET ?? '')
    .split(',')
    .map((secret) => secret.trim())
    .filter(Boolean);
  if (secrets.some((secret) => secret.length < MIN_SECRET_LENGTH)) {
    issues.push(`PORTICO_SECRET: every secret must be at least ${MIN_SECRET_LENGTH} characters`);
  } else if (secrets.length === 0 && mode === 'production' && needSecret) {
    issues.push(`PORTICO_SECRET: required in production (${MIN_SECRET_LENGTH}+ characters)`);
  }
  const trustedProxies = parseTrustedProxies(vars.PORTICO_TRUSTED_PROXIES, issues);
  const tracing = tracingSettings(env, issues);
  if (
    vars.PORTICO_METRICS_TOKEN !== undefined &&
    vars.PORTICO_METRICS_TOKEN.length < MIN_METRICS_TOKEN_LENGTH
  ) {
    issues.push(`PORTICO_METRICS_TOKEN: at least ${MIN_METRICS_TOKEN_LENGTH} characters`);
  }
  const workers = vars.PORTICO_WORKERS === undefined ? 1 : parseWorkerCount(vars.PORTICO_WORKERS);
  if (workers === undefined) issues.push(`PORTICO_WORKERS: expected ${WORKER_COUNT_EXPECTED}`);
  for (const variable of ['DATABASE_URL', 'SYSTEM_DATABASE_URL'] as const) {
    const url = vars[variable];
    try {
      if (url && variable === 'DATABASE_URL' && isRemoteStoreUrl(url)) parseRemoteStoreUrl(url);
      else if (url) parseDatabaseUrl(url);
    } catch (error) {
      issues.push(`${variable}: ${(error as Error).message}`);
    }
  }
  if (vars.BLOB_STORAGE_URL) {
    try {
      const target = parseBlobStorageUrl(vars.BLOB_STORAGE_URL, vars.AWS_REGION);
      if (target.kind === 'database' && vars.DATABASE_URL && isRemoteStoreUrl(vars.DATABASE_URL)) {
        issues.push(
          'BLOB_STORAGE_URL: database keeps the bytes in the store database, but DATABASE_URL names a remote store, which holds its own bytes: unset BLOB_STORAGE_URL',
        );
      }
    } catch (error) {
      issues.push(`BLOB_STORAGE_URL: ${(error as Error).message}`);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);

  const port = vars.PORT ?? 4000;
  const embedded = `sqlite:${join(dataDir, 'portico.sqlite')}`;
  const databaseUrl = vars.DATABASE_URL ?? embedded;
  return {
    env: {
      mode,
      host: vars.HOST ?? '127.0.0.1',
      port,
      publicUrl: (vars.PORTICO_PUBLIC_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
      secrets: secrets.length > 0 || !needSecret ? secrets : [await developmentSecret(dataDir)],
      dataDir,
      databaseUrl,
      // A remote store holds no identity: the system database is then the embedded file.
      systemDatabaseUrl: vars.SYSTEM_DATABASE_URL ?? (isRemoteStoreUrl(databaseUrl) ? embedded : databaseUrl),
      redisUrl: vars.REDIS_URL,
      blobStorageUrl: blobStorageUrl(vars.BLOB_STORAGE_URL, cwd, dataDir),
      aws: {
        accessKeyId: vars.AWS_ACCESS_KEY_ID,
        secretAccessKey: vars.AWS_SECRET_ACCESS_KEY,
        sessionToken: vars.AWS_SESSION_TOKEN,
        region: vars.AWS_REGION,
      },
      remoteApiKey: vars.PORTICO_REMOTE_API_KEY,
      remoteAuthUrl: vars.PORTICO_REMOTE_AUTH_URL,
      trustedProxies,
      tracing,
      metricsToken: vars.PORTICO_METRICS_TOKEN,
      workers: workers!,
      worker: workerNumber(env),
    },
    settings,
    modules,
    source,
  };
}

function locateConfigFile(cwd: string, named: string | undefined, issues: string[]): string | undefined {
  if (named) {
    const path = isAbsolute(named) ? named : resolve(cwd, named);
    if (!existsSync(path)) issues.push(`PORTICO_CONFIG: no file at ${path}`);
    else if (!/\.(ts|mjs|json)$/.test(path))
      issues.push('PORTICO_CONFIG: expected a .ts, .mjs or .json file');
    else return path;
    return undefined;
  }
  const found = CONFIG_FILE_NAMES.map((name) => join(cwd, name)).filter((path) => existsSync(path));
  if (found.length > 1)
    issues.push(`config: several configuration files found (${found.join(', ')}); keep one`);
  return found[0];
}

async function readConfigFile(path: string, issues: string[]): Promise<unknown> {
  try {
    if (path.endsWith('.json')) {
      const value: unknown = JSON.parse(await readFile(path, 'utf8'));
      if (!value || typeof value !== 'object' || Array.isArray(value)) {
        issues.push(`${path}: expected a JSON object`);
        return {};
      }
      return value;
    }
    const loaded = (await import(pathToFileURL(path).href)) as { default?: unknown };
    if (!loaded.default || typeof loaded.default !== 'object') {
      issues.push(`${path}: expected a default export of defineConfig({...})`);
      return {};
    }
    return loaded.default;
  } catch (error) {
    issues.push(`${path}: ${(error as Error).message}`);
    return {};
  }
}

function settingsSchema(modules: PorticoModule[], issues: string[]) {
  const shape: Record<string, z.ZodType> = {};
  const owners = new Map<string, string>();
  for (const module of modules) {
    for (const [key, schema] of Object.entries(module.config ?? {})) {
      const owner = owners.get(key);
      // A module listed twice is composeModules' to report.
      if (owner && owner !== module.name)
        issues.push(`modules: "${module.name}" and "${owner}" both declare the config key "${key}"`);
      owners.set(key, module.name);
      shape[key] = schema;
    }
  }
  return z.strictObject(shape);
}

/** Formats zod issues as `path.to.key: message`, one line each (unknown keys one line per key). */
export function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.flatMap((issue) => {
    const at = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${[...at, key].join('.')}: unknown key`);
    }
    return [`${at.length > 0 ? at.join('.') : 'config'}: ${issue.message}`];
  });
}

/** Development only: a secret generated once and kept in the data folder, so sessions survive restarts. */
async function developmentSecret(dataDir: string): Promise<string> {
  const path = join(dataDir, 'secret');
  try {
    const stored = (await readFile(path, 'utf8')).trim();
    if (stored.length >= MIN_SECRET_LENGTH) return stored;
  } catch {
    // Not generated yet.
  }
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  try {
    // 'wx': when two processes start at once, the first write wins and both use it.
    await writeFile(path, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return (await readFile(path, 'utf8')).trim();
  }
}

/** BLOB_STORAGE_URL with a relative folder made absolute (from where the gateway starts); the data folder's `blobs` by default. */
function blobStorageUrl(url: string | undefined, cwd: string, dataDir: string): string {
  if (url === undefined) return `file:${join(dataDir, 'blobs')}`;
  const folder = /^file:(\/\/)?(.+)$/i.exec(url)?.[2];
  return folder === undefined ? url : `file:${resolve(cwd, folder)}`;
}
