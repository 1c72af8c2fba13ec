import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, REDEEM_TOKEN, TestClient } from './harness.ts';
import { BIN, runPortico } from './run-cli.ts';

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
    const port = await freePort();
    const server = spawn(process.execPath, [BIN, 'start'], {
      cwd: folder,
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'production',
        PORTICO_SECRET: 's'.repeat(40),
        PORT: String(port),
        ...env,
      },
    });
    try {
      let output = '';
      server.stdout.on('data', (chunk) => {
        output += chunk;
      });
      await expect.poll(() => output, { timeout: 15_000 }).toContain('listening');
      const client = new TestClient(`http://127.0.0.1:${port}`);
      const token = first.stdout.trim().split('token=')[1];
      const redeemed = await client.gql(REDEEM_TOKEN, {
        token,
        profile: { email: 'root@example.com', password: 'a long enough passphrase' },
      });
      expect(redeemed.errors).toBeUndefined();
      server.kill('SIGTERM');
      const [code] = await once(server, 'close');
      expect(code).toBe(0);
      expect(output).toContain('shutting down');
    } finally {
      server.kill('SIGKILL');
    }
    const closed = await runPortico(['bootstrap'], folder, env);
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain('bootstrap is closed');
  });
});
