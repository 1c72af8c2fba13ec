import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends,
  bootstrapAdmin,
  startGateway,
  subscribeOverSse,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const SUBSCRIBE = 'subscription { sessionRevoked { sessionId reason at } }';

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
    const signUp = await user.gql<{ signUp: { user: { id: string }; session: { id: string } } }>(
      'mutation { signUp(input: { email: "sse@example.com", password: "a long enough passphrase" }) { user { id } session { id } } }',
    );
    const stream = await subscribeOverSse(user, SUBSCRIBE);
    expect(stream.response.status).toBe(200);
    // Another session's revocation is not this subscriber's business.
    const other = portico.client();
    await other.gql(
      'mutation { logIn(email: "sse@example.com", password: "a long enough passphrase") { user { id } } }',
    );
    await other.gql('mutation { logOut }');
    await admin.gql('mutation ($id: ID!) { revokeUserSessions(userId: $id) }', {
      id: signUp.data!.signUp.user.id,
    });
    const events = await stream.done;
    const next = events.filter((event) => event.event === 'next');
    expect(next).toHaveLength(1);
    expect(next[0]!.data).toMatchObject({
      data: { sessionRevoked: { sessionId: signUp.data!.signUp.session.id, reason: 'ADMIN' } },
    });
    expect(events.at(-1)?.event).toBe('complete');
  });

  it('refuses an anonymous subscriber at subscribe time', async () => {
    const stream = await subscribeOverSse(portico.client(), SUBSCRIBE);
    const events = await stream.done;
    expect(JSON.stringify(events)).toContain('UNAUTHENTICATED');
    const delivered = events.filter((event) => (event.data as { data?: unknown } | null)?.data);
    expect(delivered).toEqual([]);
  });
});
