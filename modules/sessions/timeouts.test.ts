import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogInDocument, ViewerDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  ManualClock,
  startGateway,
  type TestGateway,
} from '../../test/harness.ts';

const MINUTE = 60_000;

describe.each(backends)('session timeouts on %s', (backend) => {
  let portico: TestGateway;
  const clock = new ManualClock();

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      clock,
      config: { session: { idleTimeoutMinutes: 60, absoluteTimeoutHours: 2 } },
    });
    await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  const signIn = async () => {
    const client = portico.client();
    await client.gql(
      LogInDocument,
      { email: ADMIN.email, password: ADMIN.password },
      { 'user-agent': 'timeout-test/1.0' },
    );
    return client;
  };
  const viewer = async (client: ReturnType<TestGateway['client']>) =>
    (await client.gql(ViewerDocument)).data!.viewer;

  it('records the ip and user agent, and writes lastSeenAt at most once a minute', async () => {
    const client = await signIn();
    const first = await viewer(client);
    expect(first.session).toMatchObject({ ip: '127.0.0.1', userAgent: 'timeout-test/1.0' });
    clock.advance(30_000);
    expect((await viewer(client)).session?.lastSeenAt).toBe(first.session?.lastSeenAt);
    clock.advance(31_000);
    const later = await viewer(client);
    expect(Date.parse(later.session!.lastSeenAt) - Date.parse(first.session!.lastSeenAt)).toBe(61_000);
  });

  it('ends a session left idle past the idle timeout, not one in use', async () => {
    const idle = await signIn();
    const busy = await signIn();
    for (let i = 0; i < 3; i++) {
      clock.advance(25 * MINUTE);
      expect((await viewer(busy)).user?.email).toBe(ADMIN.email);
    }
    expect((await viewer(idle)).user).toBeNull();
  });

  it('ends a session at the absolute timeout however much it is used', async () => {
    const client = await signIn();
    const started = await viewer(client);
    expect(Date.parse(started.session!.expiresAt)).toBe(clock.now() + 60 * MINUTE);
    for (let elapsed = 0; elapsed < 110; elapsed += 55) {
      clock.advance(55 * MINUTE);
      expect((await viewer(client)).user?.email).toBe(ADMIN.email);
    }
    clock.advance(11 * MINUTE);
    expect((await viewer(client)).user).toBeNull();
  });
});
