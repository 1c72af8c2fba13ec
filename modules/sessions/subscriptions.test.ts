import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LogInDocument,
  LogOutDocument,
  RevokeUserSessionsDocument,
  SessionRevokedDocument,
  SignUpDocument,
} from '../../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  startGateway,
  subscribeOverSse,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

describe.each(backends)('sessionRevoked over SSE on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  beforeAll(async () => {
    portico = await startGateway({ backend, config: { signup: 'open' } });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('emits once with the reason when an admin revokes the session, then completes', async () => {
    const user = portico.client();
    const signUp = await user.gql(SignUpDocument, {
      input: { email: 'sse@example.com', password: 'a long enough passphrase' },
    });
    const stream = await subscribeOverSse(user, SessionRevokedDocument);
    expect(stream.response.status).toBe(200);
    // Another session's revocation is not this subscriber's business.
    const other = portico.client();
    await other.gql(LogInDocument, { email: 'sse@example.com', password: 'a long enough passphrase' });
    await other.gql(LogOutDocument);
    await admin.gql(RevokeUserSessionsDocument, { userId: signUp.data!.signUp.user.id });
    const events = await stream.done;
    const next = events.filter((event) => event.event === 'next');
    expect(next).toHaveLength(1);
    expect(next[0]!.data).toMatchObject({
      data: { sessionRevoked: { sessionId: signUp.data!.signUp.session.id, reason: 'ADMIN' } },
    });
    expect(events.at(-1)?.event).toBe('complete');
  });

  it('refuses an anonymous subscriber at subscribe time', async () => {
    const stream = await subscribeOverSse(portico.client(), SessionRevokedDocument);
    const events = await stream.done;
    expect(JSON.stringify(events)).toContain('UNAUTHENTICATED');
    const delivered = events.filter((event) => (event.data as { data?: unknown } | null)?.data);
    expect(delivered).toEqual([]);
  });
});
