#!/usr/bin/env node
// Plain JavaScript, which any Node parses: a Node too old for Portico's TypeScript (type
// stripping) is told so in one line here, instead of failing on the first `.ts` import.
import { readFileSync } from 'node:fs';

const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const required = Number(/\d+/.exec(engines.node)[0]);
if (Number(process.versions.node.split('.')[0]) < required) {
  process.stderr.write(`Portico needs Node ${engines.node}; this is Node ${process.versions.node}.\n`);
  process.exit(1);
}
await import('./portico.ts');
