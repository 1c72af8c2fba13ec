import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AcquireLeaseDocument,
  CreateApiKeyDocument,
  DeleteDocumentDocument,
  DocumentDocument,
  PutDocumentDocument,
} from '../../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const WORKER = fileURLToPath(new URL('./paused-holder.worker.ts', import.meta.url));
/** The document the worker and the test count up. */
const COUNTER = { collection: 'counters', id: 'c' };

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
    const ticket = await admin.gql(CreateApiKeyDocument, {
      name: 'worker',
      // What the worker does: hold leases, read and write the counters.
      scopes: ['leases', 'counters:read', 'counters:write'],
    });
    apiKey = ticket.data!.createApiKey.secret;
  });
  afterAll(() => portico?.close());

  const counter = async () =>
    ((await admin.gql(DocumentDocument, COUNTER)).data?.document?.data.value as number | undefined) ?? 0;

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

      const taken = await admin.gql(AcquireLeaseDocument, { key: lease, ttlSeconds: 30 });
      const token = taken.data!.acquireLease!.token;
      for (let i = 0; i < 5; i++) {
        const written = await admin.gql(PutDocumentDocument, {
          ...COUNTER,
          data: { value: (await counter()) + 1 },
          fence: { lease, token },
        });
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
      await admin.gql(DeleteDocumentDocument, COUNTER);
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
