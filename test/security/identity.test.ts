import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CreateApiKeyDocument,
  CreateInviteDocument,
  LogInDocument,
  LogInWithDocument,
  RedeemTokenDocument,
  ViewerDocument,
} from '../../client/index.ts';
import { Session } from '../../modules/sessions/entities.ts';
import { fromGlobalId, selectRows } from '../../src/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  ManualClock,
  type StartOptions,
  startGateway,
  TestClient,
  type TestGateway,
} from '../harness.ts';
import { errorLines, expectNoServerError, expectRefusal } from './answers.ts';

const MINUTE = 60_000;

/** The remote login service: each username answers with the identity it is set to. */
const remoteIdentities = new Map<string, { id: string; email: string; name?: string }>();
function remoteService(): Server {
  return createServer(async (request, response) => {
    let body = '';
    for await (const chunk of request) body += chunk;
    const identity = remoteIdentities.get((JSON.parse(body) as { username?: string }).username ?? '');
    response.writeHead(identity ? 200 : 401, { 'content-type': 'application/json' });
    response.end(JSON.stringify(identity ?? { error: 'no' }));
  });
}

describe.each(backends)('identity details on %s', (backend) => {
  let remote: Server;
  let endpoint: string;
  const started: TestGateway[] = [];
  const start = async (options: StartOptions = {}) => {
    const portico = await startGateway({ backend, ...options });
    started.push(portico);
    return portico;
  };

  beforeAll(async () => {
    remote = remoteService().listen(0, '127.0.0.1');
    await once(remote, 'listening');
    endpoint = `http://127.0.0.1:${(remote.address() as { port: number }).port}/login`;
  });
  afterAll(() => {
    remote?.closeAllConnections();
    remote?.close();
  });
  afterEach(async () => {
    for (const portico of started.splice(0).reverse()) await portico.close();
  });

  const viewer = async (client: TestClient, headers: Record<string, string> = {}) => {
    const result = await client.gql(ViewerDocument, undefined, headers);
    expectNoServerError(result);
    expect(result.errors).toBeUndefined();
    return result.data!.viewer;
  };
  const rows = async (portico: TestGateway, sql: string, params: unknown[] = []) =>
    selectRows<Record<string, unknown>>(portico.gateway.runtime.db.system.em.fork(), sql, params);

  describe('sessions', () => {
    it('keeps a session used every 10 s alive past a 1-minute idle timeout; ends one idle for 61 s', async () => {
      const clock = new ManualClock();
      const portico = await start({ clock, config: { session: { idleTimeoutMinutes: 1 } } });
      await bootstrapAdmin(portico);
      const signIn = async () => {
        const client = portico.client();
        await client.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
        return client;
      };
      const busy = await signIn();
      const idle = await signIn();
      const signedInAt = Date.parse((await viewer(busy)).session!.lastSeenAt);
      const written = new Set<number>();
      for (let elapsed = 10_000; elapsed <= 150_000; elapsed += 10_000) {
        clock.advance(10_000);
        const seen = await viewer(busy);
        expect(seen.user?.email, `after ${elapsed / 1000} s`).toBe(ADMIN.email);
        written.add(Date.parse(seen.session!.lastSeenAt) - signedInAt);
      }
      // lastSeenAt is still not written on every request: at most every quarter of the timeout.
      expect([...written].sort((a, b) => a - b)).toEqual([
        0, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 140_000,
      ]);
      // The other session was last used at sign-in, 150 s ago.
      expect((await viewer(idle)).user).toBeNull();
      const fresh = await signIn();
      clock.advance(61_000);
      expect((await viewer(fresh)).user).toBeNull();
    });

    /** A gateway with a 1-minute idle timeout on `clock`, or one more on the same database. */
    const startIdleMinute = (clock: ManualClock, first?: TestGateway) =>
      start({
        clock,
        config: { session: { idleTimeoutMinutes: 1 } },
        ...(first ? { databaseUrl: first.databaseUrl, dataDir: first.dataDir } : {}),
      });
    /** The signed-in admin and the raw id of their session. */
    const adminSession = async (portico: TestGateway) => {
      const admin = await bootstrapAdmin(portico);
      const id = fromGlobalId((await viewer(admin)).session!.id, 'Session');
      return { admin, id };
    };
    const sessionRow = (portico: TestGateway, id: string) =>
      portico.gateway.runtime.db.system.em.fork().findOneOrFail(Session, { id });
    /** The same browser on another gateway. */
    const sameBrowser = (client: TestClient, portico: TestGateway) => {
      const other = portico.client();
      for (const [name, value] of client.cookies) other.cookies.set(name, value);
      return other;
    };

    it('keeps a session used within every minute alive when a use was not written at once (idle 1 minute)', async () => {
      const clock = new ManualClock();
      const portico = await startIdleMinute(clock);
      const t0 = clock.now();
      const { admin, id } = await adminSession(portico);
      const at = async (second: number) => {
        clock.advance(t0 + second * 1000 - clock.now());
        return (await viewer(admin)).user?.email;
      };
      expect(await at(10)).toBe(ADMIN.email);
      // The use at 10 s is not written yet (lastSeenAt is not written on every request) ...
      expect((await sessionRow(portico, id)).lastSeenAt.getTime()).toBe(t0);
      // ... yet it counts: 59 s after it the session still works, and again 59 s after that.
      expect(await at(69)).toBe(ADMIN.email);
      expect(await at(128)).toBe(ADMIN.email);
      expect(await at(138)).toBe(ADMIN.email);
      expect(await at(197)).toBe(ADMIN.email);
      // Unused for 61 s, it ends, as EXPIRED.
      expect(await at(258)).toBeUndefined();
      expect(await sessionRow(portico, id)).toMatchObject({ revokedReason: 'EXPIRED' });
      expect(errorLines(portico.logs)).toEqual([]);
    });

    it('writes lastSeenAt at most once per quarter of the idle timeout, however often the session is used', async () => {
      const clock = new ManualClock();
      const portico = await startIdleMinute(clock);
      const t0 = clock.now();
      const { admin, id } = await adminSession(portico);
      const written = new Set<number>();
      for (let second = 1; second <= 300; second++) {
        clock.advance(1000);
        expect((await viewer(admin)).user?.email, `after ${second} s`).toBe(ADMIN.email);
        written.add((await sessionRow(portico, id)).lastSeenAt.getTime() - t0);
      }
      // Every write changes the value: 21 writes in 5 minutes, 15 s apart.
      expect([...written]).toEqual(Array.from({ length: 21 }, (_, i) => i * 15_000));
    });

    it('writes a use that was not written at once when its quarter window ends, for the other instances', async () => {
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      try {
        const clock = new ManualClock();
        const first = await startIdleMinute(clock);
        const second = await startIdleMinute(clock, first);
        const t0 = clock.now();
        const { admin, id } = await adminSession(first);
        clock.advance(10_000);
        expect((await viewer(admin)).user?.email).toBe(ADMIN.email);
        expect((await sessionRow(first, id)).lastSeenAt.getTime()).toBe(t0);
        // No further request: the instance's timer writes it once its window (15 s) has ended.
        clock.advance(5_000);
        await vi.advanceTimersByTimeAsync(15_000);
        await vi.waitFor(
          async () => expect((await sessionRow(first, id)).lastSeenAt.getTime()).toBe(t0 + 10_000),
          { timeout: 5000 },
        );
        // The other instance, which never saw the use at 10 s, keeps the session 59 s after it.
        clock.advance(54_000);
        expect((await viewer(sameBrowser(admin, second))).user?.email).toBe(ADMIN.email);
      } finally {
        for (const portico of started.splice(0).reverse()) await portico.close();
        vi.useRealTimers();
      }
    });

    it('writes the uses not written yet at shutdown, never moving lastSeenAt back', async () => {
      const clock = new ManualClock();
      const first = await startIdleMinute(clock);
      const second = await startIdleMinute(clock, first);
      const third = await startIdleMinute(clock, first);
      const t0 = clock.now();
      const { admin, id } = await adminSession(first);
      // A use on the first instance that it does not write at once ...
      clock.advance(10_000);
      expect((await viewer(admin)).user?.email).toBe(ADMIN.email);
      expect((await sessionRow(first, id)).lastSeenAt.getTime()).toBe(t0);
      await first.stop();
      // ... is written when it stops, so another instance keeps the session 59 s after it.
      expect((await sessionRow(second, id)).lastSeenAt.getTime()).toBe(t0 + 10_000);
      clock.advance(59_000);
      expect((await viewer(sameBrowser(admin, second))).user?.email).toBe(ADMIN.email);
      expect((await sessionRow(second, id)).lastSeenAt.getTime()).toBe(t0 + 69_000);

      // A use the third instance does not write at once (at 75 s) is older than the second's next
      // write (at 85 s): written late, it leaves the newer lastSeenAt as it is.
      clock.advance(6_000);
      expect((await viewer(sameBrowser(admin, third))).user?.email).toBe(ADMIN.email);
      clock.advance(10_000);
      expect((await viewer(sameBrowser(admin, second))).user?.email).toBe(ADMIN.email);
      expect((await sessionRow(second, id)).lastSeenAt.getTime()).toBe(t0 + 85_000);
      await third.stop();
      expect((await sessionRow(second, id)).lastSeenAt.getTime()).toBe(t0 + 85_000);
      for (const portico of [first, second, third]) expect(errorLines(portico.logs)).toEqual([]);
    });

    it('treats a session cookie with characters added or its form changed as no cookie', async () => {
      const portico = await start();
      await bootstrapAdmin(portico);
      const client = portico.client();
      await client.gql(LogInDocument, { email: ADMIN.email, password: ADMIN.password });
      const sealed = client.cookies.get('portico_session')!;
      expect((await viewer(client)).user?.email).toBe(ADMIN.email);
      const variants = [
        `${sealed}x`,
        `${sealed}~3`,
        `${sealed}${sealed}`,
        sealed.replace(/~2$/, ''),
        sealed.replace(/~2$/, '=~2'),
        sealed.replace(/^Fe26/, '%46e26'),
      ];
      for (const variant of variants) {
        const result = await portico
          .client()
          .gql(ViewerDocument, undefined, { cookie: `portico_session=${variant}` });
        expectNoServerError(result);
        expect(result.data?.viewer.user, variant.slice(-12)).toBeNull();
      }
      // The cookie as written still works (negative control).
      const original = new TestClient(portico.url);
      original.cookies.set('portico_session', sealed);
      expect((await viewer(original)).user?.email).toBe(ADMIN.email);
      expect(errorLines(portico.logs)).toEqual([]);
    });
  });

  describe('remote login', () => {
    const startRemote = async (linkByEmail?: boolean) => {
      const portico = await start({
        config: {
          methods: ['password', 'remote'],
          remoteLogin: { endpoint, ...(linkByEmail === undefined ? {} : { linkByEmail }) },
        },
      });
      const admin = await bootstrapAdmin(portico);
      const adminId = (await viewer(admin)).user!.id;
      return { portico, adminId };
    };
    const remoteLogIn = (portico: TestGateway, username: string) =>
      portico.client().gql(LogInWithDocument, {
        method: 'remote',
        credentials: { username, password: 'whatever' },
      });
    // Rows hold raw ids; GraphQL answers global ones.
    const rawId = (id: string) => fromGlobalId(id, 'User');
    const links = async (portico: TestGateway) =>
      (await rows(portico, 'select subject, user_id from remote_identities order by subject')).map((row) => ({
        subject: row.subject,
        userId: row.user_id,
      }));

    it('does not attach a remote identity to a local account by email unless linkByEmail is on', async () => {
      remoteIdentities.set('impostor', {
        id: 'r-impostor',
        email: ADMIN.email.toUpperCase(),
        name: 'Mallory',
      });
      const { portico, adminId } = await startRemote();
      const sessionsBefore = await rows(portico, 'select id from sessions');
      const refused = await remoteLogIn(portico, 'impostor');
      expectRefusal(refused, 'CONFLICT');
      expect(refused.data).toBeNull();
      // Nothing linked, the admin untouched, no session started.
      expect(await links(portico)).toEqual([]);
      expect(await rows(portico, 'select id, name from users')).toEqual([
        { id: rawId(adminId), name: ADMIN.name },
      ]);
      expect(await rows(portico, 'select id from sessions')).toEqual(sessionsBefore);
      expect(errorLines(portico.logs)).toEqual([]);
    });

    it('links by email with linkByEmail, never to an account linked to another remote id', async () => {
      remoteIdentities.set('owner', { id: 'r-owner', email: ADMIN.email });
      remoteIdentities.set('second', { id: 'r-second', email: ADMIN.email });
      const { portico, adminId } = await startRemote(true);
      const linked = await remoteLogIn(portico, 'owner');
      expect(linked.errors).toBeUndefined();
      expect(linked.data?.logInWith.user.id).toBe(adminId);
      expect(await links(portico)).toEqual([{ subject: 'r-owner', userId: rawId(adminId) }]);
      // A second remote id claiming the same address finds the account taken.
      expectRefusal(await remoteLogIn(portico, 'second'), 'CONFLICT');
      expect(await links(portico)).toEqual([{ subject: 'r-owner', userId: rawId(adminId) }]);
      expect(errorLines(portico.logs)).toEqual([]);
    });

    it('finds a linked user by the remote id whatever email the remote gives later', async () => {
      const { portico, adminId } = await startRemote();
      remoteIdentities.set('mover', { id: 'r-mover', email: 'first@remote.test' });
      const first = await remoteLogIn(portico, 'mover');
      expect(first.errors).toBeUndefined();
      const userId = first.data!.logInWith.user.id;
      remoteIdentities.set('mover', { id: 'r-mover', email: 'second@remote.test' });
      const second = await remoteLogIn(portico, 'mover');
      expect(second.data?.logInWith.user).toMatchObject({ id: userId, email: 'second@remote.test' });
      // Moving onto the admin's address takes nothing over.
      remoteIdentities.set('mover', { id: 'r-mover', email: ADMIN.email });
      expectRefusal(await remoteLogIn(portico, 'mover'), 'CONFLICT');
      expect(await links(portico)).toEqual([{ subject: 'r-mover', userId: rawId(userId) }]);
      expect(await rows(portico, 'select email from users where id = ?', [rawId(userId)])).toEqual([
        { email: 'second@remote.test' },
      ]);
      expect(userId).not.toBe(adminId);
    });
  });

  describe('expiry follows the gateway clock', () => {
    it('ends an API key at its expiry', async () => {
      const clock = new ManualClock();
      const portico = await start({ clock });
      const admin = await bootstrapAdmin(portico);
      const created = await admin.gql(CreateApiKeyDocument, {
        name: 'short',
        scopes: ['admin'],
        expiresAt: new Date(clock.now() + 60 * MINUTE).toISOString(),
      });
      expect(created.errors).toBeUndefined();
      const bearer = { authorization: `Bearer ${created.data!.createApiKey.secret}` };
      clock.advance(59 * MINUTE);
      expect((await viewer(portico.client(), bearer)).user?.email).toBe(ADMIN.email);
      clock.advance(2 * MINUTE);
      expect((await viewer(portico.client(), bearer)).user).toBeNull();
    });

    it('ends a device code after 10 minutes', async () => {
      const clock = new ManualClock();
      const portico = await start({ clock });
      await bootstrapAdmin(portico);
      const form = (path: string, fields: Record<string, string>) =>
        fetch(new URL(path, portico.url), { method: 'POST', body: new URLSearchParams(fields) });
      const started = await form('/oauth/device_authorization', { client_id: 'cli' });
      const { device_code } = (await started.json()) as { device_code: string };
      const poll = async () => {
        const response = await form('/oauth/token', {
          grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
          device_code,
          client_id: 'cli',
        });
        return ((await response.json()) as { error?: string }).error;
      };
      clock.advance(9 * MINUTE);
      expect(await poll()).toBe('authorization_pending');
      clock.advance(2 * MINUTE);
      expect(await poll()).toBe('expired_token');
    });

    it('ends an invite after 7 days', async () => {
      const clock = new ManualClock();
      const portico = await start({ clock });
      const admin = await bootstrapAdmin(portico);
      const invite = async (email: string) =>
        (await admin.gql(CreateInviteDocument, { email })).data!.createInvite.token;
      const early = await invite('early@example.com');
      const late = await invite('late@example.com');
      const redeem = (token: string) =>
        portico
          .client()
          .gql(RedeemTokenDocument, { token, profile: { password: 'a long enough passphrase' } });
      clock.advance(7 * 24 * 60 * MINUTE - MINUTE);
      expect((await redeem(early)).errors).toBeUndefined();
      clock.advance(2 * MINUTE);
      expectRefusal(await redeem(late), 'INVALID_TOKEN');
      expect(await rows(portico, 'select email from users where email = ?', ['late@example.com'])).toEqual(
        [],
      );
      expect(codeOf(await redeem(late))).toBe('INVALID_TOKEN');
    });
  });
});
