import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends,
  bootstrapAdmin,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const WORKER = fileURLToPath(new URL('./paused-holder.worker.ts', import.meta.url));

/** The worker's output lines, and a way to wait for the next one that matches. */
function follow(child: ChildProcess) {
  const lines: string[] = [];
  const waiting = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const check of waiting) check();
  });
  const next = (match: (line: string) => boolean, from = lines.length) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker printed ${lines.join(' | ')}`)), 10_000);
      const check = () => {
        if (!lines.slice(from).some(match)) return;
        clearTimeout(timer);
        waiting.delete(check);
        resolve();
      };
      waiting.add(check);
      check();
    });
  const acks = () => lines.filter((line) => line.startsWith('ack ')).length;
  return { lines, next, acks };
}

describe.each(backends)('a paused lease holder on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let apiKey: string;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: { collections: { counters: { read: 'authenticated', write: 'authenticated' } } },
    });
    admin = await bootstrapAdmin(portico);
    const ticket = await admin.gql<{ createApiKey: { secret: string } }>(
      // What the worker does: hold leases, read and write the counters.
      'mutation { createApiKey(name: "worker", scopes: ["leases", "counters:read", "counters:write"]) { secret } }',
    );
    apiKey = ticket.data!.createApiKey.secret;
  });
  afterAll(() => portico?.close());

  const counter = async () =>
    (
      await admin.gql<{ document: { data: { value: number } } | null }>(
        'query { document(collection: "counters", id: "c") { data } }',
      )
    ).data?.document?.data.value ?? 0;

  /**
   * The worker counts up under its lease; it is frozen (SIGSTOP) between a read and its
   * write, for longer than its TTL; meanwhile another holder takes the lease and counts
   * up 5 times; then the worker resumes and writes what it read before the pause.
   */
  async function pauseWorkerMidWrite(lease: string, fenced: boolean) {
    const child = spawn(process.execPath, [WORKER], {
      env: {
        ...process.env,
        PORTICO_URL: portico.url,
        PORTICO_KEY: apiKey,
        LEASE: lease,
        FENCED: fenced ? '1' : '0',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    const worker = follow(child);
    try {
      await worker.next((line) => line === 'ack 3');
      await worker.next((line) => line === 'read');
      child.kill('SIGSTOP');
      await sleep(1300); // past the worker's 1 s TTL

      const taken = await admin.gql<{ acquireLease: { token: number } }>(
        'mutation ($lease: String!) { acquireLease(key: $lease, ttlSeconds: 30) { token } }',
        { lease },
      );
      const token = taken.data!.acquireLease.token;
      for (let i = 0; i < 5; i++) {
        const written = await admin.gql(
          'mutation ($data: JSONObject!, $fence: FenceInput) { putDocument(collection: "counters", id: "c", data: $data, fence: $fence) { version } }',
          { data: { value: (await counter()) + 1 }, fence: { lease, token } },
        );
        expect(written.errors).toBeUndefined();
      }

      const resumedAt = worker.lines.length;
      child.kill('SIGCONT');
      await worker.next((line) => line === 'fenced' || line.startsWith('ack '), resumedAt);
      child.kill('SIGSTOP'); // an unfenced worker would go on counting
      return {
        acknowledged: worker.acks() + 5,
        final: await counter(),
        lines: worker.lines,
      };
    } finally {
      child.kill('SIGKILL');
      await exited;
      await admin.gql('mutation { deleteDocument(collection: "counters", id: "c") }');
    }
  }

  it('has its fenced write rejected after its lease passed to another holder: no update is lost', async () => {
    const { acknowledged, final, lines } = await pauseWorkerMidWrite('counter-lease', true);
    expect(lines.at(-1)).toBe('fenced');
    expect(final).toBe(acknowledged);
  }, 30_000);

  it('negative control: without the fence, the resumed write overwrites the other holder’s updates', async () => {
    const { acknowledged, final } = await pauseWorkerMidWrite('unfenced-lease', false);
    expect(final).toBeLessThan(acknowledged);
  }, 30_000);
});
