import { createHash, randomBytes } from 'node:crypto';
import { readdir, readlink, truncate } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BlobDocument,
  BlobSignedUrlDocument,
  BlobsDocument,
  CreateApiKeyDocument,
  DeleteBlobDocument,
  LogInDocument,
  LogOutDocument,
  RevokeApiKeyDocument,
  SetUserRolesDocument,
  ViewerDocument,
} from '../../client/index.ts';
import { selectRows } from '../../src/index.ts';
import {
  backends,
  bootstrapAdmin,
  codeOf,
  type GraphQLResponse,
  ManualClock,
  s3Client,
  signUpClient,
  startGateway,
  storeKinds,
  TEST_S3,
  TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const LIMIT = 1024 * 1024;
const CSRF = { 'x-portico-csrf': '1' };
const PASSWORD = 'a long enough passphrase';

const CONFIG = {
  signup: 'open',
  roles: { member: ['blobs:write'], guest: ['notes:read'] },
  defaultRoles: ['member'],
  rateLimits: { signUps: 100 },
  blobs: { maxBytes: LIMIT },
};

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

interface BlobJson {
  id: string;
  size: number;
  contentType: string;
  sha256: string;
  filename: string | null;
  createdAt: string;
  url: string;
}

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * POST over node:http, writing `chunks` one by one (chunked unless a content-length is given).
 * The answer may arrive before the body is sent; what happens to the rest of it then is ignored.
 */
function post(base: string, path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<Raw> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const request = httpRequest(new URL(path, base), { method: 'POST', headers, agent: false });
    request.on('response', (response) => {
      answered = true;
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () =>
        resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(parts) }),
      );
      response.on('error', () =>
        resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(parts) }),
      );
    });
    request.on('error', (error) => {
      if (!answered) reject(error);
    });
    for (const chunk of chunks) request.write(chunk);
    request.end();
  });
}

/** Writes raw bytes on a fresh connection; resolves with everything the server sent until it closed. */
function rawExchange(base: string, bytes: Buffer, { holdMs = 0 } = {}): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const received: Buffer[] = [];
    socket.on('data', (part) => received.push(part));
    socket.on('error', () => resolve(Buffer.concat(received).toString('latin1')));
    socket.on('close', () => resolve(Buffer.concat(received).toString('latin1')));
    socket.on('connect', () => {
      socket.write(bytes);
      if (holdMs > 0) setTimeout(() => socket.destroy(), holdMs);
    });
    socket.setTimeout(10_000, () => reject(new Error('no answer')));
  });
}

/** Every store with the bytes in the data folder, and the local stores with them in S3 or in the store database. */
const blobSuites = [
  ...storeKinds.map((store) => ({ store, blobs: 'file' as const })),
  ...backends.map((store) => ({ store, blobs: 's3' as const })),
  ...backends.map((store) => ({ store, blobs: 'database' as const })),
];

describe.each(blobSuites)('blobs on $store, bytes in $blobs', ({ store: backend, blobs: blobStorage }) => {
  let portico: TestGateway;
  let admin: TestClient;
  let alice: TestClient;
  let bob: TestClient;
  const clock = new ManualClock();

  const signUp = (email: string) => signUpClient(portico, email, PASSWORD);

  /** Uploads through POST /blobs with the client's cookie and the CSRF header. */
  const upload = async (
    client: TestClient,
    bytes: Uint8Array<ArrayBuffer>,
    headers: Record<string, string> = {},
    path = '/blobs',
  ) => {
    const response = await client.request(path, {
      method: 'POST',
      body: bytes,
      headers: { ...CSRF, ...headers },
    });
    expect(response.status, await response.clone().text()).toBe(201);
    return (await response.json()) as BlobJson;
  };

  const download = (client: TestClient, url: string, headers: Record<string, string> = {}, method = 'GET') =>
    client.request(url, { method, headers });

  /** Every blob row, as an admin lists them. */
  const allBlobs = async () => {
    const result = await admin.gql(BlobsDocument, { first: 100 });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!.blobs.edges.map((edge) => edge.node);
  };

  /** The objects of the storage: bytes at content addresses, and uploads in progress. */
  const files = async () => {
    if (portico.s3) {
      const client = s3Client(portico.s3);
      const listed = await client.send(
        new ListObjectsV2Command({ Bucket: TEST_S3.bucket, Prefix: `${TEST_S3.prefix}/` }),
      );
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: TEST_S3.bucket }));
      client.destroy();
      const keys = (listed.Contents ?? []).map((object) => object.Key!.slice(TEST_S3.prefix.length + 1));
      const named = (folder: string) =>
        keys.filter((key) => key.startsWith(`${folder}/`)).map((key) => key.split('/').pop()!);
      return {
        objects: named('sha256').sort(),
        temp: [...named('tmp'), ...(uploads.Uploads ?? []).map((upload) => upload.Key!)],
      };
    }
    if (blobStorage === 'database') {
      const rows = await selectRows<{ address: string }>(
        portico.gateway.runtime.db.store!.em.fork(),
        'select distinct address from blob_chunks',
      );
      const addresses = rows.map((row) => row.address);
      return {
        objects: addresses.filter((address) => !address.startsWith('tmp/')).sort(),
        temp: addresses.filter((address) => address.startsWith('tmp/')),
      };
    }
    // With a remote store, the bytes are the data server's.
    const root = join((portico.dataServer ?? portico).dataDir, 'blobs');
    const objects: string[] = [];
    for (const shard of await readdir(join(root, 'sha256'))) {
      objects.push(...(await readdir(join(root, 'sha256', shard))));
    }
    return { objects: objects.sort(), temp: await readdir(join(root, 'tmp')) };
  };

  /** Nothing of a refused upload may stay: no new row, no new file, no temporary file. */
  const expectNothingStored = async (before: { rows: number; objects: string[] }) => {
    await expect.poll(async () => (await files()).temp, { timeout: 5000 }).toEqual([]);
    expect((await allBlobs()).length).toBe(before.rows);
    expect((await files()).objects).toEqual(before.objects);
  };
  const snapshot = async () => ({ rows: (await allBlobs()).length, objects: (await files()).objects });

  const apiKey = async (client: TestClient, scopes: string[]) => {
    const result = await client.gql(CreateApiKeyDocument, { name: 'blobs', scopes });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data!.createApiKey;
  };

  beforeAll(async () => {
    portico = await startGateway({ backend, blobStorage, config: CONFIG, clock });
    admin = await bootstrapAdmin(portico);
    alice = await signUp('alice@example.com');
    bob = await signUp('bob@example.com');
  });
  afterAll(() => portico?.close());

  it('round-trips the exact bytes, with their SHA-256, over POST /blobs and GET /blobs/:id', async () => {
    const bytes = randomBytes(LIMIT);
    const response = await alice.request('/blobs?filename=ignored.bin', {
      method: 'POST',
      body: bytes,
      headers: {
        ...CSRF,
        'content-type': 'application/x-thing',
        'content-disposition': 'attachment; filename="data.bin"',
      },
    });
    expect(response.status).toBe(201);
    const blob = (await response.json()) as BlobJson;
    expect(blob).toMatchObject({
      size: LIMIT,
      sha256: sha256(bytes),
      contentType: 'application/x-thing',
      filename: 'data.bin',
    });
    expect(blob.url).toBe(`/blobs/${blob.id}`);
    expect(response.headers.get('location')).toBe(blob.url);
    expect(new Date(blob.createdAt).getTime()).toBeGreaterThan(0);

    const got = await download(alice, blob.url);
    expect(got.status).toBe(200);
    const body = Buffer.from(await got.arrayBuffer());
    expect(body.equals(bytes)).toBe(true);
    expect(Object.fromEntries(got.headers)).toMatchObject({
      etag: `"${sha256(bytes)}"`,
      'content-length': String(LIMIT),
      'accept-ranges': 'bytes',
      'x-content-type-options': 'nosniff',
      'cache-control': 'private, no-cache',
      'content-type': 'application/x-thing',
      'content-disposition': 'attachment; filename=data.bin',
    });

    const viewed = await alice.gql(BlobDocument, { id: blob.id });
    expect(viewed.data?.blob).toMatchObject({
      id: blob.id,
      size: LIMIT,
      sha256: blob.sha256,
      contentType: 'application/x-thing',
      filename: 'data.bin',
      url: blob.url,
      owner: { email: 'alice@example.com' },
    });
    // The bytes are on disk under their content address, and nowhere else.
    expect((await files()).objects).toContain(blob.sha256);
  });

  it('takes the filename from ?filename= and stores an empty body', async () => {
    const blob = await upload(alice, new Uint8Array(0), {}, '/blobs?filename=empty.txt');
    expect(blob).toMatchObject({ size: 0, filename: 'empty.txt', contentType: 'application/octet-stream' });
    const got = await download(alice, blob.url);
    expect(got.status).toBe(200);
    expect((await got.arrayBuffer()).byteLength).toBe(0);
  });

  it('accepts exactly the limit and refuses one byte more with 413, storing nothing', async () => {
    const key = await apiKey(alice, ['blobs:write']);
    const auth = { authorization: `Bearer ${key.secret}` };
    const exact = await post(portico.url, '/blobs', { ...auth, 'content-length': String(LIMIT) }, [
      randomBytes(LIMIT),
    ]);
    expect(exact.status).toBe(201);

    const before = await snapshot();
    const over = await post(portico.url, '/blobs', { ...auth, 'content-length': String(LIMIT + 1) }, [
      randomBytes(LIMIT + 1),
    ]);
    expect(over.status).toBe(413);
    expect(JSON.parse(over.body.toString())).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    await expectNothingStored(before);
  });

  it('counts the bytes of a chunked body (no Content-Length) and cuts it off past the limit', async () => {
    const key = await apiKey(alice, ['blobs:write']);
    const before = await snapshot();
    const chunks = Array.from({ length: 20 }, () => randomBytes(64 * 1024)); // 1.25 MiB
    const over = await post(portico.url, '/blobs', { authorization: `Bearer ${key.secret}` }, chunks);
    expect(over.status).toBe(413);
    await expectNothingStored(before);

    // Under the limit, chunked works.
    const small = await post(
      portico.url,
      '/blobs',
      { authorization: `Bearer ${key.secret}` },
      chunks.slice(0, 4),
    );
    expect(small.status).toBe(201);
    expect(JSON.parse(small.body.toString()).sha256).toBe(sha256(Buffer.concat(chunks.slice(0, 4))));
  });

  it('never trusts Content-Length: a smaller one does not let more bytes in', async () => {
    const key = await apiKey(alice, ['blobs:write']);
    const before = await snapshot();
    // In process the body is what the stream holds, whatever the header says: counted, refused.
    const body = new Blob([randomBytes(LIMIT + 10)]).stream();
    const lying = await portico.gateway.fetch(
      new Request(`${portico.url}/blobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.secret}`, 'content-length': '10' },
        body,
        duplex: 'half',
      } as RequestInit),
    );
    expect(lying.status).toBe(413);
    await expectNothingStored(before);

    // On the wire the header frames the body: the server may take those 10 bytes as an upload,
    // and the rest is a malformed next request that ends the connection; it is never stored.
    const known = new Set((await allBlobs()).map((blob) => blob.id));
    const head = `POST /blobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key.secret}\r\nContent-Length: 10\r\n\r\n`;
    const framed = Buffer.from('0123456789');
    const answer = await rawExchange(
      portico.url,
      Buffer.concat([Buffer.from(head), framed, Buffer.alloc(LIMIT, 0x41)]),
    );
    expect(answer).toMatch(/HTTP\/1\.1 400 /);
    await expect.poll(async () => (await files()).temp).toEqual([]);
    // The 10-byte upload may still be on its way to the storage (S3 takes longer): let it land.
    let rows = -1;
    await expect
      .poll(
        async () => {
          const [now, previous] = [(await allBlobs()).length, rows];
          rows = now;
          return now === previous && (await files()).temp.length === 0;
        },
        { interval: 300, timeout: 5000 },
      )
      .toBe(true);
    const added = (await allBlobs()).filter((blob) => !known.has(blob.id));
    expect(
      added.every((blob) => blob.sha256 === sha256(framed)),
      JSON.stringify(added),
    ).toBe(true);
  });

  it('stores nothing when the body ends before a larger Content-Length (the client gave up)', async () => {
    const key = await apiKey(alice, ['blobs:write']);
    const before = await snapshot();
    const head = `POST /blobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key.secret}\r\nContent-Length: ${LIMIT}\r\n\r\n`;
    await rawExchange(portico.url, Buffer.concat([Buffer.from(head), randomBytes(300 * 1024)]), {
      holdMs: 300,
    });
    await expectNothingStored(before);
  });

  it('refuses a declared Content-Length over the limit before reading the body', async () => {
    const key = await apiKey(alice, ['blobs:write']);
    const before = await snapshot();
    // The head alone, announcing more than the limit: the answer comes without any body sent.
    const head = `POST /blobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key.secret}\r\nContent-Length: ${LIMIT * 100}\r\n\r\n`;
    const answer = await rawExchange(portico.url, Buffer.from(head));
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    await expectNothingStored(before);
  });

  it('answers 401 without a credential and 403 without the write scope', async () => {
    const anonymous = await post(portico.url, '/blobs', {}, [Buffer.from('hello')]);
    expect(anonymous.status).toBe(401);
    expect(JSON.parse(anonymous.body.toString())).toMatchObject({ code: 'UNAUTHENTICATED' });
    const key = await apiKey(alice, []);
    const scopeless = await post(portico.url, '/blobs', { authorization: `Bearer ${key.secret}` }, [
      Buffer.from('hello'),
    ]);
    expect(scopeless.status).toBe(403);
    expect(JSON.parse(scopeless.body.toString())).toMatchObject({ code: 'FORBIDDEN' });
  });

  it('needs the CSRF header with a cookie credential, not with an API key', async () => {
    const before = await snapshot();
    const refused = await alice.request('/blobs', {
      method: 'POST',
      body: 'x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(refused.status).toBe(403);
    await expectNothingStored(before);
    const yoga = await alice.request('/blobs', {
      method: 'POST',
      body: 'x',
      headers: { 'x-graphql-yoga-csrf': '1' },
    });
    expect(yoga.status).toBe(201);
    const key = await apiKey(alice, ['blobs:write']);
    const bearer = new TestClient(portico.url);
    const byKey = await bearer.request('/blobs', {
      method: 'POST',
      body: 'y',
      headers: { authorization: `Bearer ${key.secret}` },
    });
    expect(byKey.status).toBe(201);
  });

  describe('ranges', () => {
    const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    let url: string;
    beforeAll(async () => {
      url = (await upload(alice, bytes)).url;
    });
    const ranged = async (range: string, extra: Record<string, string> = {}) => {
      const response = await download(alice, url, { range, ...extra });
      return { response, body: Buffer.from(await response.arrayBuffer()) };
    };

    it.each([
      ['bytes=0-0', 0, 0],
      ['bytes=999-999', 999, 999],
      ['bytes=-10', 990, 999],
      ['bytes=990-', 990, 999],
      ['bytes=0-', 0, 999],
      ['bytes=500-5000', 500, 999],
      ['bytes=100-199', 100, 199],
    ])('%s → 206 with bytes %i-%i', async (range, start, end) => {
      const { response, body } = await ranged(range);
      expect(response.status).toBe(206);
      expect(response.headers.get('content-range')).toBe(`bytes ${start}-${end}/1000`);
      expect(response.headers.get('content-length')).toBe(String(end - start + 1));
      expect(body.equals(bytes.subarray(start, end + 1))).toBe(true);
    });

    it.each(['bytes=1000-', 'bytes=5000-6000', 'bytes=-0'])('%s → 416 with bytes */1000', async (range) => {
      const { response, body } = await ranged(range);
      expect(response.status).toBe(416);
      expect(response.headers.get('content-range')).toBe('bytes */1000');
      expect(body.length).toBe(0);
    });

    it.each(['bytes=0-1,5-6', 'bytes=abc', 'bytes=5', 'items=0-1', 'bytes 0-1'])(
      '%s → 200 with the whole blob (several ranges, or a header to ignore)',
      async (range) => {
        const { response, body } = await ranged(range);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-range')).toBeNull();
        expect(body.equals(bytes)).toBe(true);
      },
    );

    it('honours If-Range: a stale tag gets the whole blob', async () => {
      const etag = `"${sha256(bytes)}"`;
      expect((await ranged('bytes=0-9', { 'if-range': etag })).response.status).toBe(206);
      const stale = await ranged('bytes=0-9', { 'if-range': '"something-else"' });
      expect(stale.response.status).toBe(200);
      expect(stale.body.length).toBe(1000);
    });

    it('answers If-None-Match with 304 and no body', async () => {
      const etag = `"${sha256(bytes)}"`;
      for (const tag of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
        const response = await download(alice, url, { 'if-none-match': tag });
        expect(response.status, tag).toBe(304);
        expect(response.headers.get('etag')).toBe(etag);
        expect((await response.arrayBuffer()).byteLength).toBe(0);
      }
      expect((await download(alice, url, { 'if-none-match': '"other"' })).status).toBe(200);
    });

    it('answers HEAD with the headers of GET and no body', async () => {
      const head = await download(alice, url, {}, 'HEAD');
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe('1000');
      expect(head.headers.get('etag')).toBe(`"${sha256(bytes)}"`);
      expect(head.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await head.arrayBuffer()).byteLength).toBe(0);
      const part = await download(alice, url, { range: 'bytes=-5' }, 'HEAD');
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe('bytes 995-999/1000');
    });
  });

  it('cleans filenames: no header injection, no path, no bidi tricks; RFC 6266 on the way out', async () => {
    const injected = await upload(alice, Buffer.from('a'), {
      'content-disposition': "attachment; filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x%3D1%22.txt",
    });
    expect(injected.filename).toBe('evilSet-Cookie: x=1".txt');
    const got = await download(alice, injected.url);
    expect(got.headers.get('set-cookie')).toBeNull();
    expect(got.headers.get('content-disposition')).toBe(`attachment; filename="evilSet-Cookie: x=1\\".txt"`);

    const path = await upload(
      alice,
      Buffer.from('b'),
      {},
      `/blobs?filename=${encodeURIComponent('../../etc/passwd')}`,
    );
    expect(path.filename).toBe('passwd');
    const windows = await upload(
      alice,
      Buffer.from('b'),
      {},
      `/blobs?filename=${encodeURIComponent('C:\\temp\\a.txt')}`,
    );
    expect(windows.filename).toBe('a.txt');
    const bidi = await upload(
      alice,
      Buffer.from('c'),
      {},
      `/blobs?filename=${encodeURIComponent('invoice\u202Efdp.exe')}`,
    );
    expect(bidi.filename).toBe('invoicefdp.exe');
    const dots = await upload(alice, Buffer.from('d'), {}, '/blobs?filename=..');
    expect(dots.filename).toBeNull();
    expect((await download(alice, dots.url)).headers.get('content-disposition')).toBe('attachment');

    const unicode = await upload(alice, Buffer.from('e'), {
      'content-disposition': 'attachment; filename="rates.txt"; filename*=UTF-8\'\'%E2%82%AC%20rates.txt',
    });
    expect(unicode.filename).toBe('€ rates.txt');
    expect((await download(alice, unicode.url)).headers.get('content-disposition')).toBe(
      `attachment; filename="? rates.txt"; filename*=UTF-8''%E2%82%AC%20rates.txt`,
    );
  });

  it.each([
    ['text/html; charset=utf-8', 'application/octet-stream', 'attachment'],
    ['image/svg+xml', 'application/octet-stream', 'attachment'],
    ['application/javascript', 'application/octet-stream', 'attachment'],
    ['text/javascript', 'application/octet-stream', 'attachment'],
    ['application/xhtml+xml', 'application/octet-stream', 'attachment'],
    ['text/xml', 'application/octet-stream', 'attachment'],
    ['image/png', 'image/png', 'inline'],
    ['text/plain', 'text/plain', 'inline'],
    ['application/zip', 'application/zip', 'attachment'],
    ['not a type', 'application/octet-stream', 'attachment'],
  ])('serves %s as %s (%s)', async (sent, served, disposition) => {
    const blob = await upload(
      alice,
      Buffer.from('<script>alert(1)</script>'),
      { 'content-type': sent },
      '/blobs?filename=x',
    );
    const got = await download(alice, blob.url);
    expect(got.headers.get('content-type')).toBe(served);
    expect(got.headers.get('content-disposition')).toBe(`${disposition}; filename=x`);
    expect(got.headers.get('x-content-type-options')).toBe('nosniff');
    expect(got.headers.get('content-security-policy')).toContain('sandbox');
  });

  it("hides another user's blob: 404 over HTTP, null and NOT_FOUND over GraphQL", async () => {
    const blob = await upload(alice, randomBytes(100));
    // One request id for both: it is the only part of an answer that may differ.
    const sameId = { 'x-request-id': 'blob-probe' };
    const unknown = await download(bob, '/blobs/0123456789abcdef0123456789abcdef', sameId);
    const foreign = await download(bob, blob.url, sameId);
    expect(foreign.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(await foreign.text()).toBe(await unknown.text());
    expect((await download(new TestClient(portico.url), blob.url)).status).toBe(404);
    expect((await download(admin, blob.url)).status).toBe(200);

    const read = await bob.gql<{ blob: null; node: null }>(
      'query ($id: ID!) { blob(id: $id) { id } node(id: $id) { id } }',
      {
        id: blob.id,
      },
    );
    expect(read.errors).toBeUndefined();
    expect(read.data).toEqual({ blob: null, node: null });
    const deleted = await bob.gql(DeleteBlobDocument, { id: blob.id });
    expect(codeOf(deleted)).toBe('NOT_FOUND');
    const missing = await bob.gql(DeleteBlobDocument, {
      id: Buffer.from('Blob:0123456789abcdef0123456789abcdef').toString('base64'),
    });
    expect(codeOf(missing)).toBe('NOT_FOUND');
    expect(missing.errors?.[0]?.message).toBe(deleted.errors?.[0]?.message);
    expect((await download(alice, blob.url)).status).toBe(200);
  });

  it('answers 404 for path-like and malformed ids', async () => {
    for (const path of [
      '/blobs/..%2F..%2Fportico.sqlite',
      '/blobs/%2e%2e%2fsecret',
      '/blobs/..%5c..%5csecret',
      '/blobs/%00',
      '/blobs/0123456789ABCDEF0123456789ABCDEF',
      `/blobs/${'a'.repeat(64)}`,
      '/blobs/sha256',
    ]) {
      const response = await download(admin, path);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type'), path).toContain('application/json');
    }
  });

  it('signs URLs that work without credentials until they expire or the signer is gone', async () => {
    const signer = await signUp('signer@example.com');
    const bytes = randomBytes(2000);
    const blob = await upload(signer, bytes);
    const sign = async (client: TestClient, expiresInSeconds?: number) => {
      const result = await client.gql(BlobSignedUrlDocument, { id: blob.id, expiresInSeconds });
      if (result.errors) throw new Error(JSON.stringify(result.errors));
      return result.data!.blob!.signedUrl;
    };
    const stranger = new TestClient(portico.url);
    const signed = await sign(signer, 60);
    expect(signed.startsWith(`${blob.url}?`)).toBe(true);
    expect(new URL(signed, portico.url).search).toMatch(/^\?exp=\d+&by=s_[0-9a-f]+&sig=[\w-]{43}$/);
    const got = await download(stranger, signed);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
    expect((await download(stranger, signed, { range: 'bytes=0-9' }, 'HEAD')).status).toBe(206);

    // Tampering with any part breaks it.
    const url = new URL(signed, portico.url);
    const tampered = (name: string, value: string) => {
      const copy = new URL(url);
      copy.searchParams.set(name, value);
      return `${copy.pathname}${copy.search}`;
    };
    expect(
      (await download(stranger, tampered('exp', String(Number(url.searchParams.get('exp')) + 1)))).status,
    ).toBe(404);
    // Its first character changed (to another one: a signature may begin with either).
    const sig = url.searchParams.get('sig')!;
    const otherSig = `${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`;
    expect((await download(stranger, tampered('sig', otherSig))).status).toBe(404);
    expect((await download(stranger, tampered('by', 's_0123456789abcdef0123'))).status).toBe(404);
    const other = await upload(signer, randomBytes(10));
    expect((await download(stranger, `${other.url}${url.search}`)).status).toBe(404);

    // Expiry, on the gateway's clock.
    clock.advance(61_000);
    expect((await download(stranger, signed)).status).toBe(404);

    // The default is 5 minutes; the cap is 7 days.
    const defaulted = new URL(await sign(signer), portico.url);
    expect(Number(defaulted.searchParams.get('exp')) - Math.floor(clock.now() / 1000)).toBe(300);
    expect(await sign(signer, 7 * 24 * 3600)).toContain('sig=');
    for (const seconds of [0, -5, 7 * 24 * 3600 + 1]) {
      const refused = await signer.gql(BlobSignedUrlDocument, { id: blob.id, expiresInSeconds: seconds });
      expect(codeOf(refused), String(seconds)).toBe('BAD_USER_INPUT');
    }

    // Logging out ends the session, and every URL it signed.
    const live = await sign(signer, 3600);
    expect((await download(stranger, live)).status).toBe(200);
    await signer.gql(LogOutDocument);
    expect((await download(stranger, live)).status).toBe(404);
  });

  it('signs with an API key too, until the key is revoked', async () => {
    const blob = await upload(alice, randomBytes(50));
    // Signing hands out reading: the key needs blobs:read.
    const key = await apiKey(alice, ['blobs:read']);
    const program = new TestClient(portico.url);
    const signed = await program.gql(
      BlobSignedUrlDocument,
      { id: blob.id, expiresInSeconds: 600 },
      { authorization: `Bearer ${key.secret}` },
    );
    const path = signed.data!.blob!.signedUrl;
    expect(path).toContain('by=k_');
    const stranger = new TestClient(portico.url);
    expect((await download(stranger, path)).status).toBe(200);
    const revoked = await alice.gql(RevokeApiKeyDocument, { id: key.apiKey.id });
    expect(revoked.errors).toBeUndefined();
    expect((await download(stranger, path)).status).toBe(404);
  });

  it('stores identical content once; deleting one blob leaves the other whole', async () => {
    const bytes = randomBytes(5000);
    const first = await upload(alice, bytes);
    const second = await upload(bob, bytes);
    expect(second.sha256).toBe(first.sha256);
    expect(second.id).not.toBe(first.id);
    expect((await files()).objects.filter((name) => name === first.sha256)).toHaveLength(1);

    const removed = await alice.gql(DeleteBlobDocument, { id: first.id });
    expect(removed.data).toEqual({ deleteBlob: true });
    expect((await download(alice, first.url)).status).toBe(404);
    const still = await download(bob, second.url);
    expect(still.status).toBe(200);
    expect(Buffer.from(await still.arrayBuffer()).equals(bytes)).toBe(true);

    await bob.gql(DeleteBlobDocument, { id: second.id });
    expect((await files()).objects).not.toContain(first.sha256);
  });

  it('keeps shared bytes when an upload of the same content races a delete', async () => {
    const bytes = randomBytes(20_000);
    for (let round = 0; round < 15; round++) {
      const doomed = await upload(alice, bytes);
      const [deleted, kept] = await Promise.all([
        alice.gql(DeleteBlobDocument, { id: doomed.id }),
        upload(bob, bytes),
      ]);
      expect(deleted.data).toEqual({ deleteBlob: true });
      const got = await download(bob, kept.url);
      expect(got.status, `round ${round}`).toBe(200);
      expect(sha256(Buffer.from(await got.arrayBuffer()))).toBe(kept.sha256);
      await bob.gql(DeleteBlobDocument, { id: kept.id });
    }
    expect((await files()).objects).not.toContain(sha256(bytes));
  });

  describe('GraphQL multipart uploadBlob', () => {
    const UPLOAD =
      'mutation ($file: File!) { uploadBlob(file: $file) { id size sha256 filename contentType url } }';
    const multipart = (
      client: TestClient,
      bytes: Uint8Array<ArrayBuffer>,
      headers: Record<string, string> = CSRF,
    ) => {
      const form = new FormData();
      form.set('operations', JSON.stringify({ query: UPLOAD, variables: { file: null } }));
      form.set('map', JSON.stringify({ 0: ['variables.file'] }));
      form.set('0', new File([bytes], 'note.txt', { type: 'text/plain' }));
      return client.request('/graphql', { method: 'POST', body: form, headers });
    };

    it('uploads with the CSRF header', async () => {
      const bytes = randomBytes(3000);
      const response = await multipart(alice, bytes);
      const result = (await response.json()) as { data?: { uploadBlob: BlobJson }; errors?: unknown };
      expect(result.errors).toBeUndefined();
      expect(result.data?.uploadBlob).toMatchObject({
        size: 3000,
        sha256: sha256(bytes),
        filename: 'note.txt',
        contentType: 'text/plain',
      });
      const got = await download(alice, result.data!.uploadBlob.url);
      expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
    });

    it('is refused with 403 without the CSRF header, and nothing runs', async () => {
      const before = await snapshot();
      const response = await multipart(alice, randomBytes(100), {});
      expect(response.status).toBe(403);
      await expectNothingStored(before);
    });

    it('refuses a file over the limit with PAYLOAD_TOO_LARGE', async () => {
      const before = await snapshot();
      const response = await multipart(alice, randomBytes(LIMIT + 1));
      const result = (await response.json()) as Pick<GraphQLResponse, 'errors'>;
      expect(codeOf(result)).toBe('PAYLOAD_TOO_LARGE');
      expect(response.status).toBe(413);
      await expectNothingStored(before);
    });

    it('needs write access', async () => {
      const guest = await signUp('guest@example.com');
      const userId = (await guest.gql(ViewerDocument)).data!.viewer.user!.id;
      await admin.gql(SetUserRolesDocument, { userId, roles: ['guest'] });
      await guest.gql(LogInDocument, { email: 'guest@example.com', password: PASSWORD });
      const result = (await (await multipart(guest, randomBytes(10))).json()) as Pick<
        GraphQLResponse,
        'errors'
      >;
      expect(codeOf(result)).toBe('FORBIDDEN');
      const anonymous = (await (
        await multipart(new TestClient(portico.url), randomBytes(10))
      ).json()) as Pick<GraphQLResponse, 'errors'>;
      expect(codeOf(anonymous)).toBe('UNAUTHENTICATED');
    });
  });

  it("lists the viewer's blobs newest first, everyone's for admins, in capped pages", async () => {
    const lister = await signUp('lister@example.com');
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.unshift((await upload(lister, Buffer.from(`item ${i}`))).id);
    const first = await lister.gql(BlobsDocument, { first: 3 });
    expect(first.data!.blobs.edges.map((edge) => edge.node.id)).toEqual(mine.slice(0, 3));
    expect(first.data!.blobs.pageInfo.hasNextPage).toBe(true);
    expect(first.data!.blobs.edges[0]!.node.owner).toMatchObject({ email: 'lister@example.com' });
    const second = await lister.gql(BlobsDocument, { first: 3, after: first.data!.blobs.pageInfo.endCursor });
    expect(second.data!.blobs.edges.map((edge) => edge.node.id)).toEqual(mine.slice(3));
    expect(second.data!.blobs.pageInfo.hasNextPage).toBe(false);

    const everyone = await admin.gql(BlobsDocument, { first: 100 });
    const ids = everyone.data!.blobs.edges.map((edge) => edge.node.id);
    expect(ids).toEqual(expect.arrayContaining(mine));
    expect(new Set(everyone.data!.blobs.edges.map((edge) => edge.node.owner?.email)).size).toBeGreaterThan(1);
    expect(codeOf(await lister.gql(BlobsDocument, { first: -1 }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await lister.gql(BlobsDocument, { after: 'bm9wZQ' }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await new TestClient(portico.url).gql(BlobsDocument, {}))).toBe('UNAUTHENTICATED');
  });

  it('lists only the blobs whose content type starts with contentTypePrefix, ignoring case', async () => {
    const typed = await signUp('typed@example.com');
    const uploadTyped = async (contentType: string) =>
      (await upload(typed, Buffer.from(`a ${contentType} blob`), { 'content-type': contentType })).id;
    const png = await uploadTyped('image/png');
    const jpeg = await uploadTyped('Image/JPEG');
    const pdf = await uploadTyped('application/pdf');
    const odd = await uploadTyped('application/x_y');
    const listed = async (
      client: TestClient,
      contentTypePrefix: string | null,
      first = 100,
      after?: string,
    ) => {
      const result = await client.gql(BlobsDocument, { contentTypePrefix, first, after });
      if (result.errors) throw new Error(JSON.stringify(result.errors));
      return result.data!.blobs;
    };
    const ids = async (contentTypePrefix: string | null) =>
      (await listed(typed, contentTypePrefix)).edges.map((edge) => edge.node.id);

    expect(await ids('image/')).toEqual([jpeg, png]);
    expect(await ids('APPLICATION/')).toEqual([odd, pdf]);
    expect(await ids('application/pdf')).toEqual([pdf]);
    // `_` and `%` are characters of the prefix, not patterns.
    expect(await ids('application/x_')).toEqual([odd]);
    expect(await ids('application/_')).toEqual([]);
    expect(await ids('%')).toEqual([]);
    expect(await ids('')).toEqual([odd, pdf, jpeg, png]);
    expect(await ids(null)).toEqual([odd, pdf, jpeg, png]);

    // Pages of a filtered list follow the filter.
    const first = await listed(typed, 'image/', 1);
    expect(first.edges.map((edge) => edge.node.id)).toEqual([jpeg]);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = await listed(typed, 'image/', 1, first.pageInfo.endCursor ?? undefined);
    expect(second.edges.map((edge) => edge.node.id)).toEqual([png]);
    expect(second.pageInfo.hasNextPage).toBe(false);

    // An admin's filtered list spans every owner's, and still only that type.
    const everyone = await listed(admin, 'application/pdf');
    expect(everyone.edges.map((edge) => edge.node.id)).toContain(pdf);
    expect(new Set(everyone.edges.map((edge) => edge.node.contentType))).toEqual(
      new Set(['application/pdf']),
    );

    const badPrefix = async (contentTypePrefix: string) => {
      const result = await typed.gql(BlobsDocument, { contentTypePrefix });
      expect(codeOf(result)).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0]?.extensions?.field).toBe('contentTypePrefix');
    };
    await badPrefix('x'.repeat(256));
    await badPrefix('imäge/');
    await badPrefix('image/\t');
  });

  it('logged no error along the way (no 500, no row without bytes)', () => {
    expect(portico.logs.filter((line) => line.level >= 50)).toEqual([]);
  });
});

describe.each(storeKinds)('blobs readable by every signed-in user, on %s', (backend) => {
  let portico: TestGateway;
  let owner: TestClient;
  let other: TestClient;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: { ...CONFIG, blobs: { maxBytes: 64 * LIMIT, read: 'authenticated', write: 'authenticated' } },
    });
    await bootstrapAdmin(portico);
    owner = await signUpClient(portico, 'owner@example.com', PASSWORD);
    other = await signUpClient(portico, 'other@example.com', PASSWORD);
  });
  afterAll(() => portico?.close());

  it('lets others download, but only the owner (or an admin) delete', async () => {
    const response = await owner.request('/blobs', { method: 'POST', body: 'shared', headers: CSRF });
    const blob = (await response.json()) as BlobJson;
    expect((await other.request(blob.url)).status).toBe(200);
    const refused = await other.gql(DeleteBlobDocument, { id: blob.id });
    expect(codeOf(refused)).toBe('FORBIDDEN');
    expect((await other.request(blob.url)).status).toBe(200);
    // A signed-in user's listing holds only their own blobs.
    const listed = await other.gql(BlobsDocument);
    expect(listed.data?.blobs.edges).toEqual([]);
    const removed = await owner.gql(DeleteBlobDocument, { id: blob.id });
    expect(removed.data).toEqual({ deleteBlob: true });
    expect((await other.request(blob.url)).status).toBe(404);
  });

  const MIB = 1024 * 1024;
  const posted = async (bytes: Uint8Array<ArrayBuffer>) => {
    const response = await owner.request('/blobs', { method: 'POST', body: bytes, headers: CSRF });
    expect(response.status).toBe(201);
    return (await response.json()) as BlobJson;
  };

  it('serves a blob of several MiB whole and in ranges across its 1 MiB reads, headers and all', async () => {
    const bytes = randomBytes(5 * MIB + 12_345);
    const blob = await posted(bytes);
    const whole = await other.request(blob.url);
    expect(whole.status).toBe(200);
    expect(Object.fromEntries(whole.headers)).toMatchObject({
      etag: `"${sha256(bytes)}"`,
      'content-length': String(bytes.length),
      'content-type': 'application/octet-stream',
      'content-disposition': 'attachment',
      'accept-ranges': 'bytes',
      'cache-control': 'private, no-cache',
      'x-request-id': expect.stringMatching(/^\S+$/),
    });
    expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);
    for (const [start, end] of [
      [MIB - 10, 3 * MIB + 10],
      [5 * MIB, bytes.length - 1],
      [0, MIB - 1],
    ] as const) {
      const part = await other.request(blob.url, { headers: { range: `bytes=${start}-${end}` } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe(`bytes ${start}-${end}/${bytes.length}`);
      expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(start, end + 1))).toBe(true);
    }
  });

  it('sends every byte right to a client that stops reading for a while (the server waits, reusing nothing early)', async () => {
    const bytes = randomBytes(24 * MIB + 3);
    const blob = await posted(bytes);
    const received = await new Promise<Buffer>((resolve, reject) => {
      const get = httpRequest(new URL(blob.url, portico.url), {
        headers: { cookie: owner.cookieHeader },
        agent: false,
      });
      get.on('response', (response) => {
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('end', () => resolve(Buffer.concat(parts)));
        response.on('error', reject);
        // The socket's buffers fill up; the server's writes wait, then go on.
        response.pause();
        setTimeout(() => response.resume(), 500);
      });
      get.on('error', reject);
      get.end();
    });
    expect(received.length).toBe(bytes.length);
    expect(sha256(received)).toBe(sha256(bytes));
  });

  it('cuts the connection when the stored bytes end early, and logs why', async () => {
    const bytes = randomBytes(4 * MIB);
    const blob = await posted(bytes);
    const holder = portico.dataServer ?? portico;
    await truncate(join(holder.dataDir, 'blobs', 'sha256', blob.sha256.slice(0, 2), blob.sha256), 2.5 * MIB);
    const response = await other.request(blob.url);
    expect(response.status).toBe(200);
    await expect(response.arrayBuffer()).rejects.toThrow();
    // Short of the blob's size, which the response's Content-Length says (from a data server, too).
    await expect
      .poll(() => portico.logs.filter((line) => line.level === 50).map((line) => line.msg))
      .toContain('blob download failed midway');
    // The gateway goes on serving.
    expect((await other.request(blob.url, { method: 'HEAD' })).status).toBe(200);
  });

  it('keeps no file open after clients went away mid-download', async () => {
    const response = await owner.request('/blobs', {
      method: 'POST',
      body: randomBytes(32 * 1024 * 1024),
      headers: CSRF,
    });
    const blob = (await response.json()) as BlobJson;
    const openBlobFiles = async () => {
      const targets = await Promise.all(
        (await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')),
      );
      return targets.filter((target) => target.includes(blob.sha256));
    };
    for (let i = 0; i < 5; i++) {
      const controller = new AbortController();
      const download = await owner.request(blob.url, { signal: controller.signal });
      const reader = download.body!.getReader();
      await reader.read();
      controller.abort();
      await reader.cancel().catch(() => {});
    }
    await expect.poll(openBlobFiles, { timeout: 5000 }).toEqual([]);
  });
});
