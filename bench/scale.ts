/**
 * `npm run bench:scale`: index-page latency as a collection grows (issue 4). Starts Portico
 * (SQLite, production mode) in a child process, seeds its store file directly from this process
 * in large transactions (documents and index entries, keys encoded by the SQL store backend),
 * and after 10k, 100k and 1M documents measures p50/p99 of a 20-document index page with
 * autocannon. Prints the table, the p99 ratio 1M / 10k (goal <= 1.5) and the seeding time.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { pino } from 'pino';
import { definitions } from '../modules/collections/config.ts';
import { openDatabases } from '../src/db.ts';
import { indexKey } from '../src/store/sql/documents.ts';

const root = join(import.meta.dirname, '..');
const STAGES = [10_000, 100_000, 1_000_000];
const GROUPS = 100;
const BATCH = 20_000;
const SECONDS = 5;
const CONFIG = {
  collections: {
    items: { indexes: { byGroup: ['group', 'rank'] }, read: 'authenticated', write: 'authenticated' },
  },
};
const ADMIN = { email: 'bench@example.com', password: 'bench horse battery staple' };
// Mid-group: the range starts in the middle of g42's ranks, whatever the size.
const pageQuery = (documents: number) =>
  `{ documents(collection: "items", index: "byGroup", where: { eq: { group: "g42" }, gte: ${Math.floor(documents / 2)} }, first: 20) { edges { node { id data } } } }`;

const dir = await mkdtemp(join(tmpdir(), 'portico-scale-'));
const storeUrl = `sqlite:${join(dir, 'store.sqlite')}`;
await writeFile(join(dir, 'portico.config.json'), JSON.stringify(CONFIG));
const { DATABASE_URL, SYSTEM_DATABASE_URL, PORTICO_CONFIG, ...inherited } = process.env;
const child = spawn(process.execPath, [join(root, 'bin/portico.ts'), 'start'], {
  cwd: dir,
  env: {
    ...inherited,
    NODE_ENV: 'production',
    PORTICO_SECRET: 'bench-secret-that-is-long-enough-0123456789',
    PORTICO_DATA_DIR: dir,
    DATABASE_URL: storeUrl,
    SYSTEM_DATABASE_URL: `sqlite:${join(dir, 'system.sqlite')}`,
    HOST: '127.0.0.1',
    PORT: '0',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});

try {
  const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
    let token: string | undefined;
    child.once('exit', (code) => reject(new Error(`Portico exited (${code})`)));
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const line = JSON.parse(text) as { msg?: string; url?: string; bootstrap?: boolean };
      if (line.bootstrap) token = line.msg?.match(/token=([\w-]+)/)?.[1];
      if (line.url && token) resolve({ url: line.url, token });
    });
  });
  const redeemed = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query:
        'mutation ($t: String!, $p: ProfileInput) { redeemToken(token: $t, profile: $p) { user { id } } }',
      variables: { t: token, p: ADMIN },
    }),
  });
  const cookie = redeemed.headers
    .getSetCookie()
    .map((header) => header.split(';')[0]!)
    .find((pair) => pair.startsWith('portico_session='));
  if (!cookie) throw new Error(`no session: ${await redeemed.text()}`);

  // The store file, opened beside Portico (WAL lets both in); documents go in through native statements.
  const databases = await openDatabases({
    env: { databaseUrl: storeUrl, systemDatabaseUrl: storeUrl },
    modules: [],
    log: pino({ level: 'warn' }),
  });
  const native = (await databases.store!.em.getConnection().getNativeClient()) as unknown as {
    prepare(sql: string): { run(...params: unknown[]): unknown };
    transaction<T>(fn: () => T): () => T;
  };
  const insertDocument = native.prepare(
    'insert into documents (collection, id, data, version, owner_id, created_at, updated_at) values (?, ?, ?, 1, null, ?, ?)',
  );
  const insertEntry = native.prepare(
    'insert into index_entries (collection, index_name, key, document_id, owner_id, unique_key) values (?, ?, ?, ?, null, null)',
  );
  const index = definitions({ collections: CONFIG.collections as never })
    .get('items')!
    .indexes.get('byGroup')!;

  let seeded = 0;
  let seedingMs = 0;
  const rows: string[][] = [['documents', 'p50 ms', 'p99 ms', 'req/s']];
  const p99s: number[] = [];
  for (const target of STAGES) {
    const started = performance.now();
    while (seeded < target) {
      const upTo = Math.min(target, seeded + BATCH);
      native.transaction(() => {
        const now = Date.now();
        for (let i = seeded; i < upTo; i++) {
          const id = `d${String(i).padStart(8, '0')}`;
          const data = { group: `g${String(i % GROUPS).padStart(2, '0')}`, rank: i, title: `item ${i}` };
          insertDocument.run('items', id, JSON.stringify(data), now, now);
          insertEntry.run('items', 'byGroup', indexKey(index, data), id);
        }
      })();
      seeded = upTo;
    }
    seedingMs += performance.now() - started;
    const query = JSON.stringify({ query: pageQuery(target) });
    const check = (await (
      await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie },
        body: query,
      })
    ).json()) as { data?: { documents: { edges: unknown[] } } };
    if (check.data?.documents.edges.length !== 20)
      throw new Error(`unexpected page at ${target}: ${JSON.stringify(check)}`);
    const run = (duration: number) =>
      autocannon({
        url: `${url}/graphql`,
        method: 'POST',
        connections: 10,
        duration,
        headers: { 'content-type': 'application/json', cookie },
        body: query,
      });
    await run(2);
    const result = await run(SECONDS);
    if (result.errors || result.non2xx || result.timeouts)
      throw new Error(`errors at ${target}: ${JSON.stringify(result.statusCodeStats)}`);
    p99s.push(result.latency.p99);
    rows.push([
      target.toLocaleString('en'),
      String(result.latency.p50),
      String(result.latency.p99),
      String(Math.round(result.requests.average)),
    ]);
    console.log(
      `${target.toLocaleString('en')} documents: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`,
    );
  }
  await databases.close();
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  console.log(
    `\n${rows.map((row) => `| ${row.map((cell, column) => cell.padStart(widths[column]!)).join(' | ')} |`).join('\n')}\n`,
  );
  const ratio = p99s.at(-1)! / p99s[0]!;
  console.log(
    `p99 at 1M / p99 at 10k: ${ratio.toFixed(2)} (goal <= 1.5): ${ratio <= 1.5 ? 'met' : 'MISSED'}`,
  );
  console.log(
    `Seeding ${seeded.toLocaleString('en')} documents with their index entries: ${(seedingMs / 1000).toFixed(1)} s`,
  );
} finally {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}
