import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedeemTokenDocument } from '../client/index.ts';
import { freePort, TestClient } from './harness.ts';
import { runPortico, startPortico } from './run-cli.ts';

describe('portico CLI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-cli-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('prints help', async () => {
    const run = await runPortico(['--help'], dir);
    expect(run.code).toBe(0);
    for (const command of ['start', 'migrate', 'print-schema', 'bootstrap', 'login', 'logout'])
      expect(run.stdout).toContain(command);
    expect((await runPortico(['frobnicate'], dir)).code).toBe(2);
  });

  it('exits non-zero before listening when the configuration is invalid', async () => {
    const folder = await mkdtemp(join(dir, 'bad-'));
    await writeFile(
      join(folder, 'portico.config.json'),
      JSON.stringify({ signup: 'maybe', session: { nope: 1 } }),
    );
    const port = await freePort();
    const run = await runPortico(['start'], folder, { PORT: String(port), PORTICO_SECRET: 'short' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('signup:');
    expect(run.stderr).toContain('session.nope: unknown key');
    expect(run.stderr).toContain('PORTICO_SECRET:');
    expect(run.stdout).not.toContain('listening');
  });

  it('prints the schema without a secret or a database', async () => {
    const folder = await mkdtemp(join(dir, 'schema-'));
    const run = await runPortico(['print-schema'], folder, { PORTICO_SECRET: '' });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('type Query {');
  });

  it('migrates, prints bootstrap links while no admin exists, and then refuses', async () => {
    const folder = await mkdtemp(join(dir, 'boot-'));
    const env = { PORTICO_DATA_DIR: join(folder, 'data') };
    expect((await runPortico(['migrate'], folder, env)).code).toBe(0);
    const first = await runPortico(['bootstrap'], folder, env);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^http:\/\/localhost:4000\/auth\/redeem\?token=[\w-]{43}\n$/);

    // Redeem it through a real server started by the CLI.
    const server = await startPortico(folder, env);
    try {
      const client = new TestClient(server.url);
      const token = first.stdout.trim().split('token=')[1]!;
      const redeemed = await client.gql(RedeemTokenDocument, {
        token,
        profile: { email: 'root@example.com', password: 'a long enough passphrase' },
      });
      expect(redeemed.errors).toBeUndefined();
      expect(await server.stop()).toBe(0);
    } finally {
      await server.stop();
    }
    expect(server.logs.some((line) => line.msg.startsWith('shutting down'))).toBe(true);
    const closed = await runPortico(['bootstrap'], folder, env);
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain('bootstrap is closed');
  });
});
