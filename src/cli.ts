import cluster from 'node:cluster';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { type Environment, StartupError } from './config.ts';
import { createGateway, type Gateway } from './gateway.ts';
import { type LoadedConfig, loadConfig } from './load-config.ts';
import { createLogger, type Logger } from './logger.ts';
import { composeModules, type ModuleCommand, type PorticoModule } from './module.ts';
import { closeRuntime, openRuntime } from './open-runtime.ts';
import { buildSchema, printSortedSchema } from './schema.ts';
import { awaitTurn, parseWorkerCount, runPrimary, WORKER_COUNT_EXPECTED } from './workers.ts';

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
  start:
    'Run the gateway (HOST, PORT and the other variables of docs/configuration.md apply). `--workers <n>` or `--workers auto` (one per core) runs that many processes on the port.',
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
  let startOptions: StartOptions = {};
  if (command === 'start') {
    try {
      startOptions = parseStartOptions(rest);
    } catch (error) {
      err(`start: ${(error as Error).message}\n\n${usage(moduleCommands, options.otherCommands)}`);
      return 2;
    }
  }
  try {
    return await runCommand(command, rest, moduleCommands, options, out, startOptions);
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
  startOptions: StartOptions,
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
  if (command === 'start') {
    const { env } = config;
    if (env.worker !== undefined) return serveAsWorker(config, env.worker, log.child({ worker: env.worker }));
    const count = startOptions.workers ?? env.workers;
    if (count === 1) return start(config, log);
    await ensurePortFree(env);
    return runPrimary({ count, env, log, source: config.source });
  }

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

interface StartOptions {
  /** `--workers`: how many processes run the gateway (`PORTICO_WORKERS` when absent). */
  workers?: number;
}

/** `start`'s own options; throws with the reason when they are wrong. */
function parseStartOptions(args: string[]): StartOptions {
  const { values } = parseArgs({ args, options: { workers: { type: 'string' } }, strict: true });
  if (values.workers === undefined) return {};
  const workers = parseWorkerCount(values.workers);
  if (workers === undefined)
    throw new Error(`--workers: expected ${WORKER_COUNT_EXPECTED}, got "${values.workers}"`);
  return { workers };
}

/** One process serving the port. */
async function start(config: LoadedConfig, log: Logger): Promise<number> {
  // Before migrations and index builds, which can take long: a taken port is reported at once.
  await ensurePortFree(config.env);
  const started = await listening(config, log);
  log.info(
    { url: started.url, mode: config.env.mode, config: config.source ?? null },
    `Portico listening on ${started.url}`,
  );
  return untilSignal(started, log);
}

/** One of the processes of `start --workers` (the primary checked the port and logs the start). */
async function serveAsWorker(config: LoadedConfig, worker: number, log: Logger): Promise<number> {
  try {
    await awaitTurn(worker);
    const gateway = await listening(config, log);
    log.info('worker listening');
    return await untilSignal(gateway, log);
  } finally {
    // The IPC channel to the primary would keep the process alive once the gateway has stopped;
    // the worker's own disconnect (not process.disconnect) tells the cluster module it is on purpose.
    cluster.worker?.disconnect();
  }
}

/** The gateway, started and listening on HOST:PORT, with its URL. */
async function listening(config: LoadedConfig, log: Logger): Promise<{ gateway: Gateway; url: string }> {
  const gateway = await createGateway(config, { log });
  try {
    return { gateway, url: await gateway.listen() };
  } catch (error) {
    await gateway.close();
    throw listenProblem(error, config.env);
  }
}

/**
 * Serves until SIGTERM or SIGINT, then shuts down gracefully; resolves with the exit code. The
 * other signal changes nothing then (a worker gets Ctrl-C's SIGINT from the terminal and SIGTERM
 * from its primary); the same one again kills the process, as without a handler.
 */
function untilSignal({ gateway }: { gateway: Gateway }, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
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
