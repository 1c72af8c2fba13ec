import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import collections from './index.ts';

const CONFIG = {
  signup: 'open',
  defaultRoles: ['writer'],
  roles: { writer: ['counters:read', 'counters:write'] },
  collections: { counters: {}, diary: { read: 'owner', write: 'owner' } },
};

/** Collects the `next` payloads of a GraphQL-over-SSE subscription until `count` arrive. */
async function subscribe(
  client: TestClient,
  query: string,
  variables: Record<string, unknown>,
  count: number,
) {
  const controller = new AbortController();
  const response = await client.request('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query, variables }),
    signal: controller.signal,
  });
  const events: unknown[] = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (/^event: next$/m.test(block) && data) events.push(JSON.parse(data));
          if (events.length >= count) {
            controller.abort();
            return events;
          }
        }
      }
    } catch {
      // Aborted once enough events arrived.
    }
    return events;
  })();
  return { done, stop: () => controller.abort() };
}

describe.each(backends)('live documents on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('ends 64 concurrent compare-and-set increments at the number of acknowledged writes, with no 500', async () => {
    const created = await admin.gql<{ putDocument: { id: string } }>(
      'mutation { putDocument(collection: "counters", id: "c1", data: { value: 0 }) { id } }',
    );
    expect(created.errors).toBeUndefined();
    const increment = async () => {
      for (let attempt = 0; attempt < 200; attempt++) {
        const read = await admin.gql<{ document: { version: number; data: { value: number } } }>(
          '{ document(collection: "counters", id: "c1") { version data } }',
        );
        const { version, data } = read.data!.document;
        const write = await admin.gql(
          'mutation ($data: JSONObject!, $v: Int) { putDocument(collection: "counters", id: "c1", data: $data, expectedVersion: $v) { version } }',
          {
            data: { value: data.value + 1 },
            v: version,
          },
        );
        expect(write.status).toBeLessThan(500);
        if (!write.errors) return true;
        expect(codeOf(write)).toBe('CONFLICT');
      }
      return false;
    };
    const acknowledged = (await Promise.all(Array.from({ length: 64 }, increment))).filter(Boolean).length;
    const final = await admin.gql<{ document: { version: number; data: { value: number } } }>(
      '{ document(collection: "counters", id: "c1") { version data } }',
    );
    expect(acknowledged).toBe(64);
    expect(final.data?.document.data.value).toBe(64);
    expect(final.data?.document.version).toBe(65);
  });

  it('pushes changes to subscribers who may read them, and nothing else', async () => {
    const alice = portico.client();
    await alice.gql(
      'mutation { signUp(input: { email: "alice@example.com", password: "a long enough passphrase" }) { user { id } } }',
    );
    const bob = portico.client();
    await bob.gql(
      'mutation { signUp(input: { email: "bob@example.com", password: "a long enough passphrase" }) { user { id } } }',
    );
    const query =
      'subscription ($c: String!) { documentChanged(collection: $c) { kind id version document { data } } }';
    const alicesView = await subscribe(alice, query, { c: 'diary' }, 2);
    const adminsView = await subscribe(admin, query, { c: 'diary' }, 3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await bob.gql('mutation { putDocument(collection: "diary", id: "b1", data: { text: "bob" }) { id } }');
    await alice.gql(
      'mutation { putDocument(collection: "diary", id: "a1", data: { text: "alice" }) { id } }',
    );
    await alice.gql('mutation { deleteDocument(collection: "diary", id: "a1") }');
    const seenByAlice = (await alicesView.done) as {
      data: { documentChanged: { kind: string; id: string } };
    }[];
    expect(
      seenByAlice.map((event) => `${event.data.documentChanged.kind} ${event.data.documentChanged.id}`),
    ).toEqual(['CREATED a1', 'DELETED a1']);
    expect((await adminsView.done).length).toBe(3);

    const anonymous = await portico.client().gql(query, { c: 'diary' });
    expect(codeOf(anonymous)).toBe('UNAUTHENTICATED');
  });

  it('offers the same store to server-side code', async () => {
    const { runtime } = portico.gateway;
    const em = runtime.db.store.em.fork();
    const saved = await collections.api.put(runtime, em, 'counters', {
      id: 'srv',
      data: { value: 1 },
      ownerId: null,
    });
    expect(saved.version).toBe(1);
    await expect(
      collections.api.put(runtime, em, 'counters', {
        id: 'srv',
        data: { value: 2 },
        ownerId: null,
        expectedVersion: 5,
      }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(
      collections.api.query(runtime, em, 'counters', { index: 'nope', first: 1 }),
    ).rejects.toMatchObject({
      code: 'INDEX_NOT_DECLARED',
    });
    const page = await collections.api.query(runtime, em, 'counters', { first: 10 });
    expect(page.items.map((item) => item.document.id)).toEqual(['c1', 'srv']);
  });
});
