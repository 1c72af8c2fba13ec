import { expect } from 'vitest';
import type { GraphQLResponse, LogLine } from '../harness.ts';

/**
 * The adversarial suite's one assertion about a refused request: the contract's code,
 * never a 5xx (SERVICE_UNAVAILABLE's 503 aside) and never INTERNAL_SERVER_ERROR.
 */
export function expectRefusal(result: GraphQLResponse<unknown>, code: string): void {
  const codes = (result.errors ?? []).map((error) => error.extensions?.code);
  expect(codes, JSON.stringify(result.errors)).toContain(code);
  expectNoServerError(result);
}

/** No 5xx but an outage's 503, no INTERNAL_SERVER_ERROR, no stack or SQL in the answer. */
export function expectNoServerError(result: GraphQLResponse<unknown>): void {
  const codes = (result.errors ?? []).map((error) => error.extensions?.code);
  expect(codes, JSON.stringify(result.errors)).not.toContain('INTERNAL_SERVER_ERROR');
  if (result.status >= 500) expect(codes).toContain('SERVICE_UNAVAILABLE');
  expect(JSON.stringify(result.errors ?? [])).not.toMatch(
    /\bat .+:\d+:\d+|\bselect\b.+\bfrom\b|\binsert into\b/i,
  );
}

/** Log lines of level error or worse (pino's 50+), which a refused request must not cause. */
export const errorLines = (logs: LogLine[]) => logs.filter((line) => line.level >= 50);
