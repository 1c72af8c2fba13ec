#!/usr/bin/env node
import { builtinModules } from '../modules/index.ts';
import { runCli } from '../src/cli.ts';

const argv = process.argv.slice(2);
const clientCommands = {
  login: 'Sign in to a gateway with the device flow (`login <url>`) and save the API key it issues.',
  logout: 'Revoke and forget the key saved for a gateway (`logout <url>`).',
};
// login and logout talk to a running gateway: no configuration, no database, and the
// client is loaded only for them.
if (argv[0] === 'login' || argv[0] === 'logout') {
  const { runClientCli } = await import('../client/cli.ts');
  process.exitCode = await runClientCli(argv);
} else {
  process.exitCode = await runCli(argv, { builtinModules, otherCommands: clientCommands });
}
