import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends,
  bootstrapAdmin,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const SUBSCRIBE = 'subscription { sessionRevoked { sessionId reason at } }';

/** Opens a GraphQL-over-SSE stream and collects its events until the server completes it. */
async function openStream(client: TestClient, query: string) {
  const response = await client.request('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query }),
  });
  const events: { event: string; data: unknown }[] = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!block.startsWith(':')) events.push({ event, data: data ? JSON.parse(data) : null });
        end = buffer.indexOf('\n\n');
      }
    }
    return events;
  })();
  return { response, events, done };
}

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
    const stream = await openStream(user, SUBSCRIBE);
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
    const stream = await openStream(portico.client(), SUBSCRIBE);
    const events = await stream.done;
    expect(JSON.stringify(events)).toContain('UNAUTHENTICATED');
    const delivered = events.filter((event) => (event.data as { data?: unknown } | null)?.data);
    expect(delivered).toEqual([]);
  });
});
