import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  ChangePasswordDocument,
  CreateApiKeyDocument,
  DocumentChangedDocument,
  LogInDocument,
  LogOutDocument,
  PutDocumentDocument,
  RevokeApiKeyDocument,
  RevokeSessionDocument,
  SessionEventsDocument,
  SessionRevokedDocument,
  SetUserDisabledDocument,
  SetUserRolesDocument,
  SignUpDocument,
} from '../client/index.ts';
import { Session } from '../modules/sessions/entities.ts';
import { fromGlobalId } from '../src/index.ts';
import {
  backends,
  bootstrapAdmin,
  type Collected,
  collect,
  connectSse,
  connectWs,
  eventually,
  ManualClock,
  type Operation,
  queryText,
  type StreamCredential,
  startGateway,
  type TestClient,
  type TestGateway,
} from './harness.ts';

const REVOCATIONS = { query: queryText(SessionRevokedDocument) };
const NOTES = { collection: 'notes' };
const PASSWORD = 'a long enough passphrase';
type Transport = 'ws' | 'sse';

/** The contract codes of a stream's errors, whether they came as results or as a failure. */
function codesOf(collected: Collected<{ errors?: readonly unknown[] }>): string[] {
  const failure = collected.error;
  const failed = Array.isArray(failure) ? failure : failure ? [failure] : [];
  return [...collected.results.flatMap((result) => result.errors ?? []), ...failed].map(
    (error) => (error as { extensions?: { code?: string } }).extensions?.code ?? String(error),
  );
}

describe.each(backends)('subscriptions on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  let serial = 0;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: {
        signup: 'open',
        // Every test signs up new users from the same address.
        rateLimits: { signUps: 1000 },
        roles: { member: ['notes:read', 'notes:write'], editor: ['notes:read'] },
        defaultRoles: ['member'],
        collections: { notes: { indexes: { byTag: ['tag'] }, read: 'owner', write: 'owner' } },
      },
    });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  /** A new user signed in on a new client; `again()` signs them in on a second client. */
  async function newUser() {
    const email = `user${++serial}@example.com`;
    const client = portico.client();
    const signedUp = await client.gql(SignUpDocument, { input: { email, password: PASSWORD } });
    const { user, session } = signedUp.data!.signUp;
    const again = async () => {
      const other = portico.client();
      await other.gql(LogInDocument, { email, password: PASSWORD });
      return other;
    };
    return { client, userId: user.id, sessionId: session.id, again };
  }

  /** True once this instance tracks a stream of the session (its Session.id). */
  const isLive = (sessionId: string) =>
    portico.gateway.runtime.live.tracked('session').includes(fromGlobalId(sessionId, 'Session'));

  function subscribe(
    transport: Transport,
    credential: StreamCredential,
    operation: Operation,
    variables: Record<string, unknown> = {},
  ) {
    const query = queryText(operation);
    if (transport === 'ws') {
      const connection = connectWs(portico.url, credential);
      const stream = collect(connection.client.iterate({ query, variables }));
      return Object.assign(stream, { closed: connection.closed });
    }
    const stream = collect(connectSse(portico.url, credential).iterate({ query, variables }));
    return Object.assign(stream, { closed: undefined });
  }

  /** Each way a session ends, and what the subscriber must be told. */
  const endings: [string, (user: Awaited<ReturnType<typeof newUser>>) => Promise<unknown>][] = [
    ['LOGOUT', (user) => user.client.gql(LogOutDocument)],
    ['REVOKED', async (user) => (await user.again()).gql(RevokeSessionDocument, { id: user.sessionId })],
    ['ADMIN', (user) => admin.gql(RevokeSessionDocument, { id: user.sessionId })],
    ['USER_DISABLED', (user) => admin.gql(SetUserDisabledDocument, { userId: user.userId, disabled: true })],
    ['ROLES_CHANGED', (user) => admin.gql(SetUserRolesDocument, { userId: user.userId, roles: ['editor'] })],
    [
      'PASSWORD_CHANGED',
      async (user) =>
        (await user.again()).gql(ChangePasswordDocument, {
          currentPassword: PASSWORD,
          newPassword: 'another long passphrase',
        }),
    ],
  ];

  describe.each(['ws', 'sse'] as const)('sessionRevoked over %s', (transport) => {
    it.each(endings)('emits %s once, then completes', async (reason, end) => {
      const user = await newUser();
      const stream = subscribe(transport, { client: user.client }, SessionRevokedDocument);
      // The subscription is live once the server tracks its credential.
      await eventually(() => isLive(user.sessionId));
      const result = await end(user);
      expect(result).toMatchObject({ status: 200 });
      const done = await stream.done;
      expect(done.error).toBeUndefined();
      expect(done.completed).toBe(true);
      expect(done.results).toEqual([
        { data: { sessionRevoked: { sessionId: user.sessionId, reason, at: expect.any(String) } } },
      ]);
      if (stream.closed) expect((await stream.closed).code).toBe(4403);
    });

    it('emits REVOKED for a stream authenticated by an API key when the key is revoked', async () => {
      const user = await newUser();
      const created = await user.client.gql(CreateApiKeyDocument, { name: 'stream', scopes: ['notes:read'] });
      const { apiKey, secret } = created.data!.createApiKey;
      const stream = subscribe(transport, { apiKey: secret }, SessionRevokedDocument);
      await eventually(
        () =>
          portico.gateway.runtime.live.size > 0 && portico.gateway.runtime.live.tracked('apiKey').length > 0,
      );
      await user.client.gql(RevokeApiKeyDocument, { id: apiKey.id });
      const done = await stream.done;
      expect(done.results).toEqual([
        { data: { sessionRevoked: { sessionId: apiKey.id, reason: 'REVOKED', at: expect.any(String) } } },
      ]);
      if (stream.closed) expect((await stream.closed).code).toBe(4403);
    });

    it("ends the credential's other subscriptions too", async () => {
      const user = await newUser();
      const changes = subscribe(transport, { client: user.client }, DocumentChangedDocument, NOTES);
      await eventually(() => isLive(user.sessionId));
      const put = await user.client.gql(PutDocumentDocument, { ...NOTES, data: { tag: 'a' } });
      expect(put.errors).toBeUndefined();
      await eventually(() => changes.results.length === 1, 'the change event', 5_000);
      await admin.gql(RevokeSessionDocument, { id: user.sessionId });
      const done = await changes.done;
      expect(done.completed || done.error !== undefined).toBe(true);
      expect(done.results).toHaveLength(1);
      expect(done.results[0]).toMatchObject({
        data: {
          documentChanged: {
            kind: 'CREATED',
            id: put.data?.putDocument.id,
            version: 1,
            document: { data: { tag: 'a' } },
          },
        },
      });
      if (changes.closed) expect((await changes.closed).code).toBe(4403);
    });

    it('refuses at subscribe time a subscriber without a credential, and sends it nothing', async () => {
      const anonymous = subscribe(transport, {}, SessionRevokedDocument);
      expect(codesOf(await anonymous.done)).toEqual(['UNAUTHENTICATED']);
      expect((await anonymous.done).results.filter((result) => result.data)).toEqual([]);
      // An owner-only collection shows an anonymous watcher nothing, even as documents change.
      const watcher = subscribe(transport, {}, DocumentChangedDocument, NOTES);
      const user = await newUser();
      await user.client.gql(PutDocumentDocument, { ...NOTES, data: { tag: 'secret' } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      watcher.stop();
      const watched = await watcher.done;
      expect(watched.results.filter((result) => result.data)).toEqual([]);
    });

    it('refuses a revoked cookie at subscribe time', async () => {
      const user = await newUser();
      const stale = portico.client();
      for (const [name, value] of user.client.cookies) stale.cookies.set(name, value);
      await user.client.gql(LogOutDocument);
      const stream = subscribe(transport, { client: stale }, SessionRevokedDocument);
      const done = await stream.done;
      expect(codesOf(done)).toEqual(['UNAUTHENTICATED']);
    });
  });

  describe('sessionEvents', () => {
    it('tells admins of sessions created and revoked, for everyone or one user', async () => {
      const all = subscribe('ws', { client: admin }, SessionEventsDocument);
      const user = await newUser();
      const onlyUser = subscribe('sse', { client: admin }, SessionEventsDocument, { userId: user.userId });
      await eventually(() => portico.gateway.runtime.live.tracked('session').length >= 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const other = await newUser();
      const second = await user.again();
      await second.gql(LogOutDocument);
      await eventually(() => onlyUser.results.length >= 2 && all.results.length >= 4, 'session events');
      expect(onlyUser.results.map((result) => result.data?.sessionEvents)).toMatchObject([
        { kind: 'CREATED', reason: null, session: { id: expect.any(String) } },
        { kind: 'REVOKED', reason: 'LOGOUT', session: { id: expect.any(String) } },
      ]);
      const kinds = all.results.map((result) => {
        const event = result.data?.sessionEvents as { kind: string; session: { user: { email: string } } };
        return `${event.kind} ${event.session.user.email}`;
      });
      expect(kinds).toContain(`CREATED user${serial - 1}@example.com`);
      expect(kinds.filter((kind) => kind.startsWith('REVOKED'))).toHaveLength(1);
      expect(other.userId).not.toBe(user.userId);
      all.stop();
      onlyUser.stop();
    });

    it('is for admins only', async () => {
      const user = await newUser();
      for (const transport of ['ws', 'sse'] as const) {
        const stream = subscribe(transport, { client: user.client }, SessionEventsDocument);
        expect(codesOf(await stream.done)).toEqual(['FORBIDDEN']);
      }
    });
  });

  describe('handshakes and limits', () => {
    const wsUrl = () => `${portico.url.replace(/^http/, 'ws')}/graphql`;
    const open = (headers: Record<string, string> = {}) =>
      new Promise<{ status?: number; socket?: WebSocket }>((resolve) => {
        const socket = new WebSocket(wsUrl(), 'graphql-transport-ws', { headers });
        socket.once('open', () => resolve({ socket }));
        socket.once('unexpected-response', (_request, response) => resolve({ status: response.statusCode }));
        socket.once('error', () => resolve({}));
      });
    const closeOf = (socket: WebSocket) =>
      new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));

    it("refuses another site's Origin on the WebSocket and SSE handshakes", async () => {
      expect((await open({ origin: 'http://evil.test' })).status).toBe(403);
      expect((await open({ origin: 'null' })).status).toBe(403);
      const own = await open({ origin: 'http://portico.test' });
      expect(own.socket).toBeDefined();
      own.socket!.close();
      const sse = await fetch(`${portico.url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          origin: 'http://evil.test',
        },
        body: JSON.stringify(REVOCATIONS),
      });
      expect(sse.status).toBe(403);
    });

    it('gives other sites no credentialed CORS', async () => {
      const preflight = await fetch(`${portico.url}/graphql`, {
        method: 'OPTIONS',
        headers: {
          origin: 'http://evil.test',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        },
      });
      expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    });

    it('refuses a key that does not work at connection time with 4403', async () => {
      const connection = connectWs(portico.url, { apiKey: 'pk_not_a_real_key' });
      const stream = collect(connection.client.iterate(REVOCATIONS));
      expect((await connection.closed).code).toBe(4403);
      await stream.done;
    });

    it('closes a connection that does not initialise in time, or twice', async () => {
      const { socket: silent } = await open();
      expect(await closeOf(silent!)).toBe(4408);
      const { socket: twice } = await open();
      const closed = closeOf(twice!);
      twice!.send(JSON.stringify({ type: 'connection_init' }));
      twice!.send(JSON.stringify({ type: 'connection_init' }));
      expect(await closed).toBe(4429);
    });

    it('closes a connection that sends a message past the size limit (64 KiB), not one at it', async () => {
      const { socket } = await open();
      const acked = new Promise((resolve) => socket!.once('message', resolve));
      socket!.send(JSON.stringify({ type: 'connection_init' }));
      await acked;
      const envelope = (padding: number) =>
        JSON.stringify({
          id: '1',
          type: 'subscribe',
          payload: { query: `{ viewer { scopes } }${' '.repeat(padding)}` },
        });
      const base = envelope(0).length;
      const atLimit = envelope(64 * 1024 - base);
      expect(atLimit.length).toBe(64 * 1024);
      const reply = new Promise((resolve) => socket!.once('message', resolve));
      socket!.send(atLimit);
      expect(String(await reply)).toContain('"next"');
      const closed = closeOf(socket!);
      socket!.send(envelope(64 * 1024 - base + 1));
      expect(await closed).toBe(1009);
    });
  });
});

describe.each(backends)('the periodic re-check on %s', (backend) => {
  /** A gateway whose clock the test moves; each user's stream is opened on both transports. */
  async function setUp(recheckSeconds: number) {
    const clock = new ManualClock();
    const portico = await startGateway({
      backend,
      clock,
      config: { signup: 'open', session: { idleTimeoutMinutes: 5, recheckSeconds } },
    });
    const user = portico.client();
    const signedUp = await user.gql(SignUpDocument, {
      input: { email: 'late@example.com', password: PASSWORD },
    });
    const sessionId = signedUp.data!.signUp.session.id;
    const streams = [
      collect(connectWs(portico.url, { client: user }).client.iterate(REVOCATIONS)),
      collect(connectSse(portico.url, { client: user }).iterate(REVOCATIONS)),
    ];
    await eventually(() => portico.gateway.runtime.live.tracked('session').length === 1);
    // Both transports subscribed: the session is tracked once, with two listeners.
    await new Promise((resolve) => setTimeout(resolve, 100));
    return { portico, clock, sessionId, streams };
  }

  /** Revokes a session in the database only: the event a lost pub/sub message would have carried. */
  const revokeSilently = (portico: TestGateway, sessionId: string) =>
    portico.gateway.runtime.db.system.em
      .fork()
      .nativeUpdate(
        Session,
        { id: fromGlobalId(sessionId, 'Session') },
        { revokedAt: new Date(), revokedReason: 'ADMIN' },
      );

  it('ends the streams of a session revoked without an event, with the reason of the row', async () => {
    const { portico, sessionId, streams } = await setUp(1);
    try {
      expect(await revokeSilently(portico, sessionId)).toBe(1);
      for (const stream of streams) {
        const done = await stream.done;
        expect(done.results).toEqual([
          { data: { sessionRevoked: { sessionId, reason: 'ADMIN', at: expect.any(String) } } },
        ]);
      }
    } finally {
      await portico.close();
    }
  });

  it('ends the streams of a session that timed out, as EXPIRED', async () => {
    const { portico, clock, sessionId, streams } = await setUp(1);
    try {
      clock.advance(6 * 60_000);
      for (const stream of streams) {
        expect((await stream.done).results).toEqual([
          { data: { sessionRevoked: { sessionId, reason: 'EXPIRED', at: expect.any(String) } } },
        ]);
      }
    } finally {
      await portico.close();
    }
  });

  it('is what ends them: with the re-check off, a silent revocation reaches nobody (negative control)', async () => {
    const { portico, sessionId, streams } = await setUp(0);
    try {
      await revokeSilently(portico, sessionId);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      for (const stream of streams) expect(stream.results).toEqual([]);
      expect(portico.gateway.runtime.live.tracked('session')).toHaveLength(1);
    } finally {
      await portico.close();
    }
  });
});
