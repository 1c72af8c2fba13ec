import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { CreateInviteDocument, LogInDocument, RedeemTokenDocument } from '../../client/index.ts';
import { builtinModules } from '../../modules/index.ts';
import { clientAddress, parseTrustedProxies } from '../../src/client-address.ts';
import { ConfigError, selectRows } from '../../src/index.ts';
import { loadConfig } from '../../src/load-config.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  type GraphQLResponse,
  type StartOptions,
  startGateway,
  type TestGateway,
} from '../harness.ts';
import { errorLines, expectNoServerError, expectRefusal } from './answers.ts';

/** How many answers carry each outcome: a contract code, or "signed in". */
const tally = (results: GraphQLResponse<unknown>[]) => {
  const counts: Record<string, number> = {};
  for (const result of results) {
    expectNoServerError(result);
    const outcome = (codeOf(result) as string | undefined) ?? 'signed in';
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  }
  return counts;
};

describe.each(backends)('login rate limits on %s', (backend) => {
  const started: TestGateway[] = [];
  const start = async (options: StartOptions = {}) => {
    const portico = await startGateway({ backend, ...options });
    started.push(portico);
    return portico;
  };
  afterEach(async () => {
    for (const portico of started.splice(0).reverse()) await portico.close();
  });

  const counters = async (portico: TestGateway, prefix: string) => {
    const rows = await selectRows<{ key: string; count: number | string }>(
      portico.gateway.runtime.db.system.em.fork(),
      'select key, count from rate_counters where key like ? order by key',
      [`${prefix}%`],
    );
    return Object.fromEntries(rows.map((row) => [row.key, Number(row.count)]));
  };

  const logIn = (portico: TestGateway, email: string, password: string, forwardedFor?: string) =>
    portico
      .client()
      .gql(LogInDocument, { email, password }, forwardedFor ? { 'x-forwarded-for': forwardedFor } : {});

  it('counts 30 parallel attempts as 30: ten are checked, the right password 27th is refused', async () => {
    const portico = await start({ listen: false });
    await bootstrapAdmin(portico);
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        logIn(portico, ADMIN.email, i === 26 ? ADMIN.password : `wrong password ${i}`),
      ),
    );
    expect(tally(results)).toEqual({ INVALID_CREDENTIALS: 10, RATE_LIMITED: 20 });
    expectRefusal(results[26]!, 'RATE_LIMITED');
    expect(results[26]!.errors?.[0]?.extensions?.retryAfter).toBeGreaterThan(0);
    // The refused attempts changed nothing: ten failures counted, no session started.
    expect(await counters(portico, 'login:account:')).toEqual({ [`login:account:${ADMIN.email}:local`]: 10 });
    const sessions = await selectRows<{ n: number | string }>(
      portico.gateway.runtime.db.system.em.fork(),
      'select count(*) as n from sessions',
    );
    expect(Number(sessions[0]!.n)).toBe(1); // the bootstrap's own
    expect(errorLines(portico.logs)).toEqual([]);
  });

  it('signs in a correct password sent among wrong ones while under the limit, and starts over', async () => {
    const portico = await start({ listen: false });
    await bootstrapAdmin(portico);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        logIn(portico, ADMIN.email, i === 9 ? ADMIN.password : `wrong password ${i}`),
      ),
    );
    expect(results[9]!.errors).toBeUndefined();
    expect(tally(results)).toEqual({ INVALID_CREDENTIALS: 9, 'signed in': 1 });
    // The success cleared the account's counter and gave back its place in the IP's budget.
    expect(codeOf(await logIn(portico, ADMIN.email, 'wrong again'))).toBe('INVALID_CREDENTIALS');
    expect(await counters(portico, 'login:')).toEqual({
      [`login:account:${ADMIN.email}:local`]: 1,
      'login:ip:local': 10,
    });
  });

  it('gives spelling variants of an address one counter, as the lookup finds one account', async () => {
    const portico = await start({ listen: false });
    await bootstrapAdmin(portico);
    const variants = [
      ` ${ADMIN.email}`,
      ADMIN.email.toUpperCase(),
      `${ADMIN.email}\u00a0`,
      'ａｄｍｉｎ@example.com', // full-width letters: NFKC makes them ASCII
    ];
    // Each variant finds the admin (the lookup's normalisation)...
    for (const email of variants) {
      expect((await logIn(portico, email, ADMIN.password)).errors, email).toBeUndefined();
    }
    // ...so each counts against the admin: 3 failures of each variant reach the limit of 10.
    for (let i = 0; i < 12; i++) {
      const result = await logIn(portico, variants[i % variants.length]!, `wrong password ${i}`);
      expect(codeOf(result)).toBe(i < 10 ? 'INVALID_CREDENTIALS' : 'RATE_LIMITED');
    }
    expect(await counters(portico, 'login:account:')).toEqual({ [`login:account:${ADMIN.email}:local`]: 10 });
    expectRefusal(await logIn(portico, ADMIN.email, ADMIN.password), 'RATE_LIMITED');
  });

  it('does not spend the redemption budget on a token race lost, only on guesses', async () => {
    const portico = await start({ listen: false, config: { rateLimits: { ipFailures: 12 } } });
    const admin = await bootstrapAdmin(portico);
    const invite = await admin.gql(CreateInviteDocument, {
      email: 'racer@example.com',
    });
    const { token } = invite.data!.createInvite;
    const redeem = (value: string) =>
      portico
        .client()
        .gql(RedeemTokenDocument, { token: value, profile: { password: 'a long enough passphrase' } });
    const race = await Promise.all(Array.from({ length: 10 }, () => redeem(token)));
    expect(tally(race)).toEqual({ 'signed in': 1, INVALID_TOKEN: 9 });
    // The token existed: neither the nine losers nor a later replay of it is a guess.
    expect(codeOf(await redeem(token))).toBe('INVALID_TOKEN');
    expect(await counters(portico, 'redeem:')).toEqual({ 'redeem:ip:local': 0 });
    // The whole budget is left for guesses, and guesses do count (negative control).
    const guess = (i: number) => redeem(`${'x'.repeat(41)}${String(i).padStart(2, '0')}`);
    for (let i = 0; i < 12; i++) expect(codeOf(await guess(i))).toBe('INVALID_TOKEN');
    expectRefusal(await guess(12), 'RATE_LIMITED');
    expect(await counters(portico, 'redeem:')).toEqual({ 'redeem:ip:local': 12 });
  });

  it('ignores X-Forwarded-For from a peer that is no trusted proxy', async () => {
    // The gateway listens on loopback: the peer is 127.0.0.1, trusted in neither gateway.
    const untrusting: Record<string, string>[] = [{}, { PORTICO_TRUSTED_PROXIES: '10.0.0.0/8, fd00::/8' }];
    for (const env of untrusting) {
      const portico = await start({ env });
      await bootstrapAdmin(portico);
      for (let i = 0; i < 10; i++) {
        const result = await logIn(portico, ADMIN.email, 'wrong password', `203.0.113.${i + 1}`);
        expect(codeOf(result)).toBe('INVALID_CREDENTIALS');
      }
      // A fresh forwarded address buys nothing: the client is the socket's peer.
      expectRefusal(await logIn(portico, ADMIN.email, ADMIN.password, '198.51.100.1'), 'RATE_LIMITED');
      expect(Object.keys(await counters(portico, 'login:'))).toEqual([
        `login:account:${ADMIN.email}:127.0.0.1`,
        'login:ip:127.0.0.1',
      ]);
    }
  });

  it('takes the client from X-Forwarded-For behind a trusted proxy, the right-most hop not trusted', async () => {
    const portico = await start({ env: { PORTICO_TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/8' } });
    await bootstrapAdmin(portico);
    // A burst from one client, which also writes its own (ignored) hops on the left...
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        logIn(portico, ADMIN.email, `wrong password ${i}`, `198.51.100.${i}, 203.0.113.7, 10.1.2.3`),
      ),
    );
    expect(tally(burst)).toEqual({ INVALID_CREDENTIALS: 10, RATE_LIMITED: 20 });
    expectRefusal(await logIn(portico, ADMIN.email, ADMIN.password, '203.0.113.7'), 'RATE_LIMITED');
    // ...does not lock out the account's owner at another address.
    const owner = await logIn(portico, ADMIN.email, ADMIN.password, '192.0.2.44');
    expect(owner.errors).toBeUndefined();
    expect(owner.data?.logIn.session.ip).toBe('192.0.2.44');
    expect(Object.keys(await counters(portico, 'login:'))).toEqual([
      `login:account:${ADMIN.email}:203.0.113.7`,
      'login:ip:192.0.2.44',
      'login:ip:203.0.113.7',
    ]);
  });
});

describe('trusted proxies', () => {
  const request = (peer: string, forwardedFor?: string) =>
    ({
      socket: { remoteAddress: peer },
      headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    }) as unknown as IncomingMessage;
  const trusted = (value: string) => {
    const issues: string[] = [];
    const list = parseTrustedProxies(value, issues);
    expect(issues).toEqual([]);
    return list;
  };

  it('matches addresses and CIDRs of both families, IPv4-mapped peers included', () => {
    const proxies = trusted('192.0.2.1, 10.0.0.0/8, 2001:db8::/32, ::1');
    expect(clientAddress(request('::ffff:192.0.2.1', '203.0.113.9'), proxies)).toBe('203.0.113.9');
    expect(clientAddress(request('10.9.8.7', '[2001:db9::5]:443, 10.1.1.1'), proxies)).toBe('2001:db9::5');
    expect(clientAddress(request('2001:db8::7', '198.51.100.2:5000'), proxies)).toBe('198.51.100.2');
    expect(clientAddress(request('::1', '::ffff:203.0.113.4'), proxies)).toBe('203.0.113.4');
    // Untrusted peers: the header is ignored; a mapped peer is reported as IPv4.
    expect(clientAddress(request('::ffff:198.51.100.3', '203.0.113.9'), proxies)).toBe('198.51.100.3');
    expect(clientAddress(request('2001:db9::1', '203.0.113.9'), proxies)).toBe('2001:db9::1');
    expect(clientAddress(request('198.51.100.3', '203.0.113.9'), null)).toBe('198.51.100.3');
    // Without a usable hop the trusted peer itself is the client.
    expect(clientAddress(request('192.0.2.1'), proxies)).toBe('192.0.2.1');
    expect(clientAddress(request('192.0.2.1', 'not an address'), proxies)).toBe('192.0.2.1');
    expect(clientAddress(request('192.0.2.1', 'garbage, 10.0.0.2'), proxies)).toBe('10.0.0.2');
  });

  it('refuses a bad PORTICO_TRUSTED_PROXIES at start-up, naming each bad entry', async () => {
    const load = loadConfig({
      builtinModules,
      env: { PORTICO_SECRET: 'x'.repeat(32), PORTICO_TRUSTED_PROXIES: '10.0.0.0/33, proxy.local, 192.0.2.1' },
    });
    await expect(load).rejects.toBeInstanceOf(ConfigError);
    await expect(load).rejects.toMatchObject({
      issues: [
        'PORTICO_TRUSTED_PROXIES: "10.0.0.0/33" is not an IP address or CIDR',
        'PORTICO_TRUSTED_PROXIES: "proxy.local" is not an IP address or CIDR',
      ],
    });
  });
});
