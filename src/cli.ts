import { once } from 'node:events';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { type Environment, StartupError } from './config.ts';
import { createGateway } from './gateway.ts';
import { type LoadedConfig, loadConfig } from './load-config.ts';
import { createLogger } from './logger.ts';
import { composeModules, type ModuleCommand, type PorticoModule } from './module.ts';
import { closeRuntime, openRuntime } from './open-runtime.ts';
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

/** A module's subcommand, with the module whose instance runs it. */
interface ModuleCommandOf {
  module: PorticoModule;
  command: ModuleCommand;
}

const KERNEL_COMMANDS: Record<string, string> = {
  start: 'Run the gateway (HOST, PORT and the other variables of docs/configuration.md apply).',
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
  const [command = 'help'] = positionals;
  // Everything after the command word, options too (`restore <file> --force`): the command parses its own.
  const rest = argv.slice(argv.indexOf(command) + 1);
  const moduleCommands = new Map(
    options.builtinModules.flatMap((module) =>
      Object.entries(module.commands ?? {}).map(([name, command]) => [name, { module, command }] as const),
    ),
  );

  if (values.help || command === 'help') {
    out(usage(moduleCommands, options.otherCommands));
    return 0;
  }
  if (!(command in KERNEL_COMMANDS) && !moduleCommands.has(command)) {
    err(`Unknown command "${command}".\n\n${usage(moduleCommands, options.otherCommands)}`);
    return 2;
  }

  const alone = moduleCommands.get(command)?.command;
  if (alone && 'runAlone' in alone) return alone.runAlone(rest);
  try {
    return await runCommand(command, rest, moduleCommands, options, out);
  } catch (error) {
    // The operator's to fix (configuration, a database, the port): the message, without a stack.
    if (error instanceof StartupError) {
      err(error.message);
      return 1;
    }
    throw error;
  }
}

async function runCommand(
  command: string,
  rest: string[],
  moduleCommands: Map<string, ModuleCommandOf>,
  options: CliOptions,
  out: (text: string) => void,
): Promise<number> {
  const loaded = await loadConfig({
    builtinModules: options.builtinModules,
    cwd: options.cwd,
    env: options.env,
    needSecret: command !== 'print-schema',
  });
  // Checked and ordered after their dependencies before any command uses them (a ConfigError).
  const config = { ...loaded, modules: composeModules(loaded.modules) };

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
    const { module, command: moduleCommand } = moduleCommands.get(command)!;
    if (!('run' in moduleCommand)) throw new Error(`"${command}" runs alone`);
    return await moduleCommand.run(runtime.instances.of(module), rest);
  } finally {
    await closeRuntime(runtime);
  }
}

async function start(config: LoadedConfig, log: ReturnType<typeof createLogger>): Promise<number> {
  // Before migrations and index builds, which can take long: a taken port is reported at once.
  await ensurePortFree(config.env);
  const gateway = await createGateway(config, { log });
  let url: string;
  try {
    url = await gateway.listen();
  } catch (error) {
    await gateway.close();
    throw listenProblem(error, config.env);
  }
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

/** Listens on HOST:PORT for a moment; throws the reason as a StartupError when that fails. */
async function ensurePortFree(env: Pick<Environment, 'host' | 'port'>) {
  if (env.port === 0) return;
  const probe = createServer();
  try {
    probe.listen(env.port, env.host);
    await once(probe, 'listening');
  } catch (error) {
    throw listenProblem(error, env);
  } finally {
    probe.close();
  }
}

function listenProblem(error: unknown, { host, port }: Pick<Environment, 'host' | 'port'>) {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new StartupError(
        `PORT: ${host}:${port} is already in use; stop what listens there or choose another PORT`,
      );
    case 'EACCES':
      return new StartupError(`PORT: not allowed to listen on ${host}:${port}; choose a port above 1023`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new StartupError(`HOST: ${host} is not an address of this machine`);
    default:
      return error;
  }
}

function usage(moduleCommands: Map<string, ModuleCommandOf>, otherCommands = {}): string {
  const rows = [
    ...Object.entries(KERNEL_COMMANDS),
    ...Object.entries(otherCommands),
    ...[...moduleCommands].map(([name, { command }]) => [name, command.description] as const),
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
