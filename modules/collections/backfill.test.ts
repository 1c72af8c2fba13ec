import { afterEach, describe, expect, it } from 'vitest';
import {
  CountDocumentsDocument,
  type CountDocumentsQueryVariables,
  PutDocumentDocument,
} from '../../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  type StartOptions,
  startGateway,
  type TestGateway,
} from '../../test/harness.ts';

describe.each(backends)('index changes on restart on %s', (backend) => {
  const started: TestGateway[] = [];
  const start = async (options: StartOptions) => {
    const gateway = await startGateway({ backend, listen: false, ...options });
    started.push(gateway);
    return gateway;
  };
  afterEach(async () => {
    for (const gateway of started.splice(0).reverse()) await gateway.close();
  });

  it('backfills added and changed indexes, drops removed ones, and keeps unconfigured collections', async () => {
    const first = await start({
      config: { collections: { notes: { indexes: { byStatus: ['status'] } }, old: {} } },
    });
    const admin = await bootstrapAdmin(first);
    for (let i = 0; i < 25; i++) {
      await admin.gql(PutDocumentDocument, {
        collection: 'notes',
        data: { status: i % 2 ? 'odd' : 'even', tag: `t${i % 5}`, n: i },
      });
    }
    await admin.gql(PutDocumentDocument, { collection: 'old', data: { kept: true } });
    const cookie = admin.cookieHeader;
    await first.stop();

    const restart = (collections: Record<string, unknown>) =>
      start({ config: { collections }, databaseUrl: first.databaseUrl, dataDir: first.dataDir });
    const count = async (gateway: TestGateway, variables: Partial<CountDocumentsQueryVariables>) => {
      const result = await gateway
        .client()
        .gql(CountDocumentsDocument, { collection: 'notes', ...variables }, { cookie });
      if (result.errors) throw new Error(JSON.stringify(result.errors));
      return result.data!.countDocuments;
    };

    const added = await restart({ notes: { indexes: { byStatus: ['status'], byTag: ['tag'] } } });
    expect(await count(added, { index: 'byTag', where: { eq: { tag: 't1' } } })).toBe(5);
    expect(await count(added, { index: 'byStatus', where: { eq: { status: 'odd' } } })).toBe(12);
    expect(
      added.logs.some(
        (line) => line.msg === 'index built' && line.index === 'byTag' && line.documents === 25,
      ),
    ).toBe(true);
    expect(added.logs.some((line) => line.msg === 'index built' && line.index === 'byStatus')).toBe(false);
    expect(
      added.logs.some((line) =>
        /collection "old" is no longer configured; its 1 documents are kept/.test(line.msg),
      ),
    ).toBe(true);
    await added.stop();

    const changed = await restart({ notes: { indexes: { byTag: ['tag', 'n'] } } });
    expect(await count(changed, { index: 'byTag', where: { eq: { tag: 't1' }, gte: 10 } })).toBe(3);
    expect(await count(changed, { index: 'byTag' })).toBe(25);
    expect(changed.logs.some((line) => /index removed/.test(line.msg) && line.index === 'byStatus')).toBe(
      true,
    );
    await changed.stop();

    const back = await restart({ notes: { indexes: { byTag: ['tag', 'n'] } }, old: {} });
    expect(await count(back, { collection: 'old' })).toBe(1);
  });

  it('refuses to start when a new unique index would hold duplicates', async () => {
    const first = await start({ config: { collections: { notes: {} } } });
    const admin = await bootstrapAdmin(first);
    for (let i = 0; i < 2; i++)
      await admin.gql(PutDocumentDocument, { collection: 'notes', data: { slug: 'same' } });
    await first.stop();
    await expect(
      start({
        config: { collections: { notes: { indexes: { bySlug: { fields: ['slug'], unique: true } } } } },
        databaseUrl: first.databaseUrl,
        dataDir: first.dataDir,
      } satisfies StartOptions),
    ).rejects.toThrow(
      /Index "bySlug" of collection "notes" is unique, but stored documents share a value of slug/,
    );
  });
});
