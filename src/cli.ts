import { parseArgs } from 'node:util';
import { ConfigError, type LoadedConfig, loadConfig } from './config.ts';
import { closeRuntime, createGateway, openRuntime } from './gateway.ts';
import { createLogger } from './logger.ts';
import type { PorticoModule } from './module.ts';
import { buildSchema, printSortedSchema } from './schema.ts';

export interface CliOptions {
  builtinModules: PorticoModule[];
  /** Commands the `portico` binary handles before this CLI (e.g. the client's `login`), for the help. */
  otherCommands?: Record<string, string>;
  cwd?: string;
  env?: Record<string, string | undefined>;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

const KERNEL_COMMANDS: Record<string, string> = {
  start: 'Run the gateway (HOST, PORT and the other variables of HTTP.md apply).',
  migrate: 'Bring both database schemas up to date (additive only), then exit.',
  'print-schema': 'Print the GraphQL schema (sorted SDL) to standard output.',
};

/** `portico <command>`. Returns the exit code; `start` resolves only once the server has stopped. */
export async function runCli(argv: string[], options: CliOptions): Promise<number> {
  const out = options.out ?? ((text) => process.stdout.write(`${text}\n`));
  const err = options.err ?? ((text) => process.stderr.write(`${text}\n`));
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: { help: { type: 'boolean', short: 'h' } },
  });
  const [command = 'help', ...rest] = positionals;
  const moduleCommands = new Map(
    options.builtinModules.flatMap((module) => Object.entries(module.commands ?? {})),
  );

  if (values.help || command === 'help') {
    out(usage(moduleCommands, options.otherCommands));
    return 0;
  }
  if (!(command in KERNEL_COMMANDS) && !moduleCommands.has(command)) {
    err(`Unknown command "${command}".\n\n${usage(moduleCommands, options.otherCommands)}`);
    return 2;
  }

  let config: LoadedConfig;
  try {
    config = await loadConfig({
      builtinModules: options.builtinModules,
      cwd: options.cwd,
      env: options.env,
      needSecret: command !== 'print-schema',
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      err(error.message);
      return 1;
    }
    throw error;
  }

  if (command === 'print-schema') {
    out(printSortedSchema(buildSchema(config.modules)).trimEnd());
    return 0;
  }

  const log = createLogger({ mode: config.env.mode });
  if (command === 'start') return start(config, log);

  const runtime = await openRuntime(config, log);
  try {
    if (command === 'migrate') {
      log.info('database schemas are up to date');
      return 0;
    }
    return await moduleCommands.get(command)!.run(runtime, rest);
  } finally {
    await closeRuntime(runtime);
  }
}

async function start(config: LoadedConfig, log: ReturnType<typeof createLogger>): Promise<number> {
  const gateway = await createGateway(config, { log });
  const url = await gateway.listen();
  log.info({ url, mode: config.env.mode, config: config.source ?? null }, `Portico listening on ${url}`);
  return new Promise((resolve) => {
    const shutdown = (signal: string) => {
      log.info({ signal }, 'shutting down: finishing in-flight requests');
      gateway.close().then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}

function usage(moduleCommands: Map<string, { description: string }>, otherCommands = {}): string {
  const rows = [
    ...Object.entries(KERNEL_COMMANDS),
    ...Object.entries(otherCommands),
    ...[...moduleCommands].map(([name, { description }]) => [name, description] as const),
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return [
    'Usage: portico <command>',
    '',
    'Commands:',
    ...rows.map(([name, description]) => `  ${name.padEnd(width)}  ${description}`),
    '',
    'Configuration: portico.config.ts, .mjs or .json in the working directory, or PORTICO_CONFIG.',
  ].join('\n');
}
