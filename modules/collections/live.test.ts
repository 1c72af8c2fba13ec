import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DeleteDocumentDocument,
  DocumentChangedDocument,
  DocumentDocument,
  PutDocumentDocument,
  SignUpDocument,
} from '../../client/index.ts';
import {
  bootstrapAdmin,
  codeOf,
  type SseEvent,
  startGateway,
  storeKinds,
  subscribeOverSse,
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

describe.each(storeKinds)('live documents on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('ends 64 concurrent compare-and-set increments at the number of acknowledged writes, with no 500', async () => {
    const counter = { collection: 'counters', id: 'c1' };
    const created = await admin.gql(PutDocumentDocument, { ...counter, data: { value: 0 } });
    expect(created.errors).toBeUndefined();
    const increment = async () => {
      for (let attempt = 0; attempt < 200; attempt++) {
        const read = await admin.gql(DocumentDocument, counter);
        const { version, data } = read.data!.document!;
        const write = await admin.gql(PutDocumentDocument, {
          ...counter,
          data: { value: (data.value as number) + 1 },
          expectedVersion: version,
        });
        expect(write.status).toBeLessThan(500);
        if (!write.errors) return true;
        expect(codeOf(write)).toBe('CONFLICT');
      }
      return false;
    };
    const acknowledged = (await Promise.all(Array.from({ length: 64 }, increment))).filter(Boolean).length;
    const final = await admin.gql(DocumentDocument, counter);
    expect(acknowledged).toBe(64);
    expect(final.data?.document?.data.value).toBe(64);
    expect(final.data?.document?.version).toBe(65);
  });

  it('pushes changes to subscribers who may read them, and nothing else', async () => {
    const alice = portico.client();
    await alice.gql(SignUpDocument, {
      input: { email: 'alice@example.com', password: 'a long enough passphrase' },
    });
    const bob = portico.client();
    await bob.gql(SignUpDocument, {
      input: { email: 'bob@example.com', password: 'a long enough passphrase' },
    });
    const diary = { collection: 'diary' };
    const alicesView = await subscribeOverSse(alice, DocumentChangedDocument, diary, { until: 2 });
    const adminsView = await subscribeOverSse(admin, DocumentChangedDocument, diary, { until: 3 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const create = async (client: TestClient, text: string) =>
      (await client.gql(PutDocumentDocument, { ...diary, data: { text } })).data!.putDocument.id;
    const b1 = await create(bob, 'bob');
    const a1 = await create(alice, 'alice');
    await alice.gql(DeleteDocumentDocument, { ...diary, id: a1 });
    const changes = (events: SseEvent[]) =>
      events
        .filter((event) => event.event === 'next')
        .map(
          (event) =>
            (event.data as { data: { documentChanged: { kind: string; id: string } } }).data.documentChanged,
        )
        .map((change) => `${change.kind} ${change.id}`);
    expect(changes(await alicesView.done)).toEqual([`CREATED ${a1}`, `DELETED ${a1}`]);
    expect(changes(await adminsView.done)).toEqual([`CREATED ${b1}`, `CREATED ${a1}`, `DELETED ${a1}`]);

    const anonymous = await portico.client().gql(DocumentChangedDocument, diary);
    expect(codeOf(anonymous)).toBe('UNAUTHENTICATED');
  });

  it('offers the same store to server-side code', async () => {
    const { runtime } = portico.gateway;
    const saved = await collections.api.put(runtime, 'counters', {
      id: 'srv',
      data: { value: 1 },
      ownerId: null,
    });
    expect(saved.version).toBe(1);
    await expect(
      collections.api.put(runtime, 'counters', {
        id: 'srv',
        data: { value: 2 },
        ownerId: null,
        expectedVersion: 5,
      }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(
      collections.api.query(runtime, 'counters', { index: 'nope', first: 1 }),
    ).rejects.toMatchObject({
      code: 'INDEX_NOT_DECLARED',
    });
    const page = await collections.api.query(runtime, 'counters', { first: 10 });
    expect(page.items.map((item) => item.document.id)).toEqual(['c1', 'srv']);
  });
});
