import { afterEach, describe, expect, it } from 'vitest';
import { LogInDocument, RequestLoginLinkDocument, SignUpDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  type StartOptions,
  startGateway,
  type TestGateway,
} from '../../test/harness.ts';

describe.each(backends)('rate limits on %s', (backend) => {
  const started: TestGateway[] = [];
  const start = async (options: StartOptions = {}) => {
    const gateway = await startGateway({ backend, listen: false, ...options });
    started.push(gateway);
    return gateway;
  };
  afterEach(async () => {
    for (const gateway of started.splice(0).reverse()) await gateway.close();
  });

  it('refuses an account from an IP after 10 failures, even the right password, with a retry hint', async () => {
    const portico = await start();
    await bootstrapAdmin(portico);
    for (let i = 0; i < 10; i++) {
      const wrong = await portico
        .client()
        .gql(LogInDocument, { email: ADMIN.email, password: `wrong password ${i}` });
      expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
    }
    const limited = await portico
      .client()
      .gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
    expect(codeOf(limited)).toBe('RATE_LIMITED');
    const retryAfter = limited.errors?.[0]?.extensions?.retryAfter as number;
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(30);
    // Another account from the same IP is not affected.
    expect(
      codeOf(
        await portico.client().gql(LogInDocument, { email: 'other@example.com', password: 'whatever it is' }),
      ),
    ).toBe('INVALID_CREDENTIALS');
  });

  it('counts aliases: no request gets more than its share of attempts', async () => {
    const portico = await start();
    const aliased = (n: number) =>
      `mutation { ${Array.from({ length: n }, (_, i) => `a${i}: logIn(email: "alias@example.com", password: "wrong ${i}") { user { id } }`).join(' ')} }`;
    // logIn is non-null: the first failure ends the request, so later aliases never run.
    for (let i = 0; i < 10; i++) {
      const result = await portico.client().gql(aliased(12));
      expect(result.errors?.map((error) => error.extensions?.code)).toEqual(['INVALID_CREDENTIALS']);
    }
    const limited = await portico.client().gql(aliased(12));
    expect(limited.errors?.map((error) => error.extensions?.code)).toEqual(['RATE_LIMITED']);
  });

  it('starts over after a success', async () => {
    const portico = await start();
    await bootstrapAdmin(portico);
    const fail = () =>
      portico.client().gql(LogInDocument, { email: ADMIN.email, password: 'not the password' });
    for (let i = 0; i < 9; i++) await fail();
    expect(
      (await portico.client().gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password })).errors,
    ).toBeUndefined();
    for (let i = 0; i < 9; i++) expect(codeOf(await fail())).toBe('INVALID_CREDENTIALS');
  });

  it('blocks an IP past its failures across accounts, and shares counters between instances', async () => {
    const first = await start({ config: { rateLimits: { ipFailures: 5 } } });
    for (let i = 0; i < 5; i++) {
      await first
        .client()
        .gql(LogInDocument, { email: `user${i}@example.com`, password: 'not the password' });
    }
    const second = await start({
      config: { rateLimits: { ipFailures: 5 } },
      databaseUrl: first.databaseUrl,
      dataDir: first.dataDir,
    });
    const elsewhere = await second
      .client()
      .gql(LogInDocument, { email: 'fresh@example.com', password: 'whatever it is' });
    expect(codeOf(elsewhere)).toBe('RATE_LIMITED');
  });

  it('limits sign-ups per IP and login links per address', async () => {
    const portico = await start({ config: { signup: 'open', rateLimits: { signUps: 2, loginLinks: 2 } } });
    const signUp = (i: number) =>
      portico
        .client()
        .gql(SignUpDocument, { input: { email: `s${i}@example.com`, password: 'a long enough passphrase' } });
    expect((await signUp(1)).errors).toBeUndefined();
    expect((await signUp(2)).errors).toBeUndefined();
    expect(codeOf(await signUp(3))).toBe('RATE_LIMITED');

    const link = (email: string) => portico.client().gql(RequestLoginLinkDocument, { email });
    expect((await link('s1@example.com')).errors).toBeUndefined();
    expect((await link('s1@example.com')).errors).toBeUndefined();
    expect(codeOf(await link('s1@example.com'))).toBe('RATE_LIMITED');
    // Unknown addresses count the same: the limit tells nothing about accounts.
    await link('ghost@example.com');
    await link('ghost@example.com');
    expect(codeOf(await link('ghost@example.com'))).toBe('RATE_LIMITED');
  });
});
