#!/usr/bin/env node
import { builtinModules } from '../modules/index.ts';
import { runCli } from '../src/cli.ts';

process.exitCode = await runCli(process.argv.slice(2), { builtinModules });
