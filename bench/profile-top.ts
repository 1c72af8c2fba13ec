/**
 * `node bench/profile-top.ts <file.cpuprofile> [count]`: a V8 CPU profile's heaviest entries, by self
 * time: the functions, then the places (Portico's own folders, each package, Node's internals), as
 * percentages of the samples. The issue notes quote these before and after a change.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

const [file, countText = '25'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/profile-top.ts <file.cpuprofile> [count]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const count = Number(countText);
const hits = new Map<number, number>();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const total = profile.samples.length;

/** Where a frame's code lives: a package, a folder of Portico, or Node itself. */
function placeOf(url: string): string {
  if (!url) return '(native, GC, idle)';
  if (url.startsWith('node:')) return 'node internals';
  const inPackage = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (inPackage) return inPackage[1]!;
  const own = url.match(/\/(src|modules\/[^/]+|bench|bin)\//);
  return own ? own[1]! : url;
}

const byFunction = new Map<string, number>();
const byPlace = new Map<string, number>();
for (const node of profile.nodes) {
  const self = hits.get(node.id) ?? 0;
  if (self === 0) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const place = placeOf(url);
  const name = `${functionName || '(anonymous)'}  ${url ? `${url.replace(/^.*?(node_modules\/|\/(?=src\/|modules\/))/, '')}:${lineNumber + 1}` : place}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + self);
  byPlace.set(place, (byPlace.get(place) ?? 0) + self);
}

const top = (entries: Map<string, number>) =>
  [...entries]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, self]) => `${((100 * self) / total).toFixed(1).padStart(5)} %  ${name}`)
    .join('\n');
console.log(
  `${total} samples\n\nSelf time by function:\n${top(byFunction)}\n\nSelf time by place:\n${top(byPlace)}`,
);
