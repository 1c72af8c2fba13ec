import { setTimeout as sleep } from 'node:timers/promises';
import { ReleaseLeaseDocument } from '../client/index.ts';
import type { TestClient } from './harness.ts';

/**
 * The lease race checker of the exclusion suites: contenders acquire and release keys in a loop,
 * and `violations` names every grant that overlapped the one before it on its key.
 */

export interface Grant {
  key: string;
  token: number;
  /** Server time of the grant. */
  start: number;
  /** A lower bound of its end: when its release was sent, or its expiry when it ran out first. */
  end: number;
  ranOut: boolean;
}

export type Acquire = (
  client: TestClient,
  key: string,
) => Promise<{ token: number; acquiredAt: string; expiresAt: string } | null>;

/** Every contender loops: acquire one of the keys, hold it a little (or past its TTL), release. */
export async function contend(
  contenders: TestClient[],
  keys: string[],
  durationMs: number,
  acquire: Acquire,
) {
  const grants: Grant[] = [];
  const deadline = Date.now() + durationMs;
  await Promise.all(
    contenders.map(async (client) => {
      while (Date.now() < deadline) {
        const key = keys[Math.floor(Math.random() * keys.length)]!;
        const lease = await acquire(client, key);
        if (!lease) continue;
        const start = Date.parse(lease.acquiredAt);
        const expiresAt = Date.parse(lease.expiresAt);
        const outlive = Math.random() < 0.05;
        await sleep(outlive ? expiresAt - Date.now() + 20 : Math.random() * 20);
        const sentAt = Date.now();
        const released = await client.gql(ReleaseLeaseDocument, { key, token: lease.token });
        const ranOut = released.data?.releaseLease === false;
        grants.push({ key, token: lease.token, start, end: ranOut ? expiresAt : sentAt, ranOut });
      }
    }),
  );
  return grants;
}

/** Per key, in token order: tokens strictly grow and each grant starts after the previous one ended. */
export function violations(grants: Grant[]): string[] {
  const problems: string[] = [];
  const byKey = Map.groupBy(grants, (grant) => grant.key);
  for (const [key, list] of byKey) {
    list.sort((a, b) => a.token - b.token || a.start - b.start);
    for (let i = 1; i < list.length; i++) {
      const [before, after] = [list[i - 1]!, list[i]!];
      if (after.token <= before.token) problems.push(`${key}: token ${after.token} granted twice`);
      else if (after.start < before.end) {
        problems.push(
          `${key}: token ${after.token} granted at ${after.start}, before token ${before.token} ended at ${before.end}`,
        );
      }
    }
  }
  return problems;
}
