import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogInDocument, LogOutDocument, ViewerDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { METRICS_TOKEN, scrape } from '../../test/metrics.ts';

describe.each(backends)('session cache metrics on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, env: { PORTICO_METRICS_TOKEN: METRICS_TOKEN } });
    admin = await bootstrapAdmin(portico);
    // The cookie's first check after sign-in may load the session.
    expect((await admin.gql(ViewerDocument)).data?.viewer.user).toBeTruthy();
  });
  afterAll(() => portico?.close());

  it('counts a hit for each cookie answered from the cache, a miss for each that needs the database', async () => {
    // A second session whose cookie outlives it: the logout evicts it from the cache.
    const other = portico.client();
    expect(
      (await other.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
    const stale = portico.client();
    for (const [name, value] of other.cookies) stale.cookies.set(name, value);
    expect((await other.gql(LogOutDocument)).errors).toBeUndefined();

    const before = await scrape(portico.url);
    for (let i = 0; i < 3; i++) expect((await admin.gql(ViewerDocument)).data?.viewer.user).toBeTruthy();
    expect((await stale.gql(ViewerDocument)).data?.viewer.user).toBeNull();
    // No cookie, nothing to look up.
    await portico.client().gql(ViewerDocument);
    const after = await scrape(portico.url);
    const change = (result: string) =>
      after.value('portico_session_cache_total', { result }) -
      before.value('portico_session_cache_total', { result });
    expect(change('hit')).toBe(3);
    expect(change('miss')).toBe(1);
  });
});
