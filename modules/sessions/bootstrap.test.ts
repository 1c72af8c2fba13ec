import { afterEach, describe, expect, it } from 'vitest';
import { AuthDocument, LogInDocument, RedeemTokenDocument, ViewerDocument } from '../../client/index.ts';
import { ADMIN, backends, codeOf, startGateway, type TestGateway } from '../../test/harness.ts';
import sessions from './index.ts';

describe.each(backends)('bootstrap on %s', (backend) => {
  const started: TestGateway[] = [];
  const start = async (options: Parameters<typeof startGateway>[0] = {}) => {
    const gateway = await startGateway({ backend, ...options });
    started.push(gateway);
    return gateway;
  };
  afterEach(async () => {
    // Restarts share a database: stop every gateway, then drop each database once.
    for (const gateway of started.splice(0).reverse()) await gateway.close();
  });

  it('prints a single-use link on first start; a bad profile does not burn it', async () => {
    const portico = await start();
    expect(portico.logs.some((line) => /No admin yet/.test(line.msg))).toBe(true);
    const token = portico.bootstrapToken();
    const noProfile = await portico.client().gql(RedeemTokenDocument, { token });
    expect(codeOf(noProfile)).toBe('BAD_USER_INPUT');
    const weak = await portico
      .client()
      .gql(RedeemTokenDocument, { token, profile: { email: ADMIN.email, password: '12345678' } });
    expect(codeOf(weak)).toBe('BAD_USER_INPUT');

    const ok = await portico.client().gql(RedeemTokenDocument, {
      token,
      profile: ADMIN,
    });
    expect(ok.errors).toBeUndefined();
    expect(ok.data?.redeemToken.user.roles).toEqual(['admin']);
    expect(ok.data?.redeemToken.session.method).toBe('bootstrap');

    const again = await portico
      .client()
      .gql(RedeemTokenDocument, { token, profile: { ...ADMIN, email: 'two@example.com' } });
    expect(codeOf(again)).toBe('INVALID_TOKEN');
    expect((await portico.client().gql(AuthDocument)).data?.auth.needsBootstrap).toBe(false);
  });

  it('gives exactly one admin to 50 concurrent redemptions of one token', async () => {
    const portico = await start();
    const token = portico.bootstrapToken();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        portico
          .client()
          .gql(RedeemTokenDocument, { token, profile: { ...ADMIN, email: `racer${i}@example.com` } }),
      ),
    );
    const winners = results.filter((result) => !result.errors);
    expect(winners).toHaveLength(1);
    expect(results.filter((result) => codeOf(result) === 'INVALID_TOKEN')).toHaveLength(49);
    expect(results.every((result) => result.status === 200)).toBe(true);
  });

  it('closes bootstrap for good across different tokens, races and restarts', async () => {
    const first = await start();
    const tokens = [first.bootstrapToken()];
    for (let i = 0; i < 4; i++) {
      const link = await first.gateway.runtime.instances.of(sessions).issueBootstrapLink();
      tokens.push(link!.split('token=')[1]!);
    }
    const results = await Promise.all(
      tokens.map((token, i) =>
        first
          .client()
          .gql(RedeemTokenDocument, { token, profile: { ...ADMIN, email: `first${i}@example.com` } }),
      ),
    );
    expect(results.filter((result) => !result.errors)).toHaveLength(1);
    await first.stop();

    const restarted = await start({ databaseUrl: first.databaseUrl, dataDir: first.dataDir });
    expect(restarted.logs.some((line) => line.bootstrap === true)).toBe(false);
    expect((await restarted.client().gql(AuthDocument)).data?.auth.needsBootstrap).toBe(false);
    expect(await restarted.gateway.runtime.instances.of(sessions).issueBootstrapLink()).toBeNull();
    for (const token of tokens) {
      const late = await restarted
        .client()
        .gql(RedeemTokenDocument, { token, profile: { ...ADMIN, email: 'late@example.com' } });
      expect(codeOf(late)).toBe('INVALID_TOKEN');
    }
  });

  it('keeps cookies working across a PORTICO_SECRET rotation, until the old secret is dropped', async () => {
    const OLD = 'o'.repeat(40);
    const NEW = 'n'.repeat(40);
    const first = await start({ env: { PORTICO_SECRET: OLD } });
    const admin = first.client();
    await admin.gql(RedeemTokenDocument, { token: first.bootstrapToken(), profile: ADMIN });
    const cookie = admin.cookieHeader;
    await first.stop();
    const restart = (secret: string) =>
      start({ databaseUrl: first.databaseUrl, dataDir: first.dataDir, env: { PORTICO_SECRET: secret } });
    const viewerEmail = async (gateway: TestGateway) =>
      (await gateway.client().gql(ViewerDocument, undefined, { cookie })).data?.viewer.user?.email ?? null;

    const rotated = await restart(`${NEW},${OLD}`);
    expect(await viewerEmail(rotated)).toBe(ADMIN.email);
    // New cookies are sealed with the first secret: they open without the old one.
    const fresh = rotated.client();
    await fresh.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
    const freshCookie = fresh.cookieHeader;
    await rotated.stop();

    const dropped = await restart(NEW);
    expect(await viewerEmail(dropped)).toBeNull();
    const stillIn = await dropped.client().gql(ViewerDocument, undefined, {
      cookie: freshCookie,
    });
    expect(stillIn.data?.viewer.user?.email).toBe(ADMIN.email);
  });

  it('refuses garbage and unknown tokens with INVALID_TOKEN', async () => {
    const portico = await start({ listen: false });
    for (const token of [
      '',
      'nope',
      'A'.repeat(43),
      `${'A'.repeat(43)}'; drop table users; --`,
      'x'.repeat(10_000),
    ]) {
      const result = await portico.client().gql(RedeemTokenDocument, { token, profile: ADMIN });
      expect(codeOf(result)).toBe('INVALID_TOKEN');
    }
  });
});
