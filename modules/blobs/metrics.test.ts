import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobSignedUrlDocument } from '../../client/index.ts';
import {
  backends,
  bootstrapAdmin,
  postBlob,
  startGateway,
  TestClient,
  type TestGateway,
} from '../../test/harness.ts';
import { METRICS_TOKEN, scrape } from '../../test/metrics.ts';

const UPLOAD = 'mutation ($file: File!) { uploadBlob(file: $file) { id size } }';

describe.each(backends)('blob metrics on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({ backend, env: { PORTICO_METRICS_TOKEN: METRICS_TOKEN } });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('counts the bytes clients upload and download, signed URLs and ranges included', async () => {
    const before = await scrape(portico.url);
    const posted = await postBlob(admin, randomBytes(3000));
    expect(posted.status).toBe(201);
    const { id, url } = (await posted.json()) as { id: string; url: string };

    const form = new FormData();
    form.set('operations', JSON.stringify({ query: UPLOAD, variables: { file: null } }));
    form.set('map', JSON.stringify({ 0: ['variables.file'] }));
    form.set('0', new File([randomBytes(500)], 'note.txt', { type: 'text/plain' }));
    const multipart = await admin.request('/graphql', {
      method: 'POST',
      body: form,
      headers: { 'x-portico-csrf': '1' },
    });
    expect(
      ((await multipart.json()) as { data?: { uploadBlob: { size: number } } }).data?.uploadBlob.size,
    ).toBe(500);

    expect((await (await admin.request(url)).arrayBuffer()).byteLength).toBe(3000);
    const signed = await admin.gql(BlobSignedUrlDocument, { id, expiresInSeconds: 60 });
    const stranger = new TestClient(portico.url);
    expect((await (await stranger.request(signed.data!.blob!.signedUrl)).arrayBuffer()).byteLength).toBe(
      3000,
    );
    const ranged = await admin.request(url, { headers: { range: 'bytes=0-99' } });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(100);
    // No body: nothing counted.
    expect((await admin.request(url, { method: 'HEAD' })).status).toBe(200);

    const after = await scrape(portico.url);
    const change = (direction: string) =>
      after.value('portico_blob_bytes_total', { direction }) -
      before.value('portico_blob_bytes_total', { direction });
    expect(change('in')).toBe(3500);
    expect(change('out')).toBe(6100);
  });

  it('counts a download of several MiB once, as its 1 MiB chunks are sent', async () => {
    const size = 5 * 1024 * 1024 + 17;
    const posted = await postBlob(admin, randomBytes(size));
    const { url } = (await posted.json()) as { url: string };
    const before = await scrape(portico.url);
    expect((await (await admin.request(url)).arrayBuffer()).byteLength).toBe(size);
    const after = await scrape(portico.url);
    const out = { direction: 'out' };
    expect(after.value('portico_blob_bytes_total', out) - before.value('portico_blob_bytes_total', out)).toBe(
      size,
    );
  });
});
