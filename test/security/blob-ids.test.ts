import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobSignedUrlDocument } from '../../client/index.ts';
import { toGlobalId } from '../../src/index.ts';
import {
  backends,
  bootstrapAdmin,
  signUpClient,
  startGateway,
  TestClient,
  type TestGateway,
} from '../harness.ts';
import { errorLines } from './answers.ts';

/**
 * Issue 12, item 11: `POST /blobs` answered a GraphQL id while `url` used the row id, so
 * `GET /blobs/<the id a client was given>` failed. Contract v2 (HTTP.md): `:id` is the Blob's id as
 * the API returns it, and `url` is `/blobs/<that id>`.
 */

const PASSWORD = 'a long enough passphrase';
const CSRF = { 'x-portico-csrf': '1' };
const CONFIG = { signup: 'open', roles: { member: ['blobs:write'] }, defaultRoles: ['member'] };

interface BlobJson {
  id: string;
  url: string;
  size: number;
  sha256: string;
}

const BLOB_FIELDS = 'id url size sha256';
const hex = () => randomBytes(16).toString('hex');
/** The row id inside a Blob's GraphQL id (`Blob:<32 hex digits>`, base64). */
const rowIdOf = (id: string) => Buffer.from(id, 'base64').toString().slice('Blob:'.length);

describe.each(backends)('blob ids on %s', (backend) => {
  let portico: TestGateway;
  let alice: TestClient;
  let bob: TestClient;

  const signUp = (email: string) => signUpClient(portico, email, PASSWORD);

  const upload = async (client: TestClient, bytes: Uint8Array<ArrayBuffer>) => {
    const response = await client.request('/blobs', { method: 'POST', body: bytes, headers: CSRF });
    expect(response.status, await response.clone().text()).toBe(201);
    return { blob: (await response.json()) as BlobJson, location: response.headers.get('location') };
  };

  const bytesOf = async (client: TestClient, path: string) => {
    const response = await client.request(path);
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
  };

  beforeAll(async () => {
    portico = await startGateway({ backend, config: CONFIG });
    await bootstrapAdmin(portico);
    alice = await signUp('alice@example.com');
    bob = await signUp('bob@example.com');
  });
  afterAll(() => portico?.close());

  it('downloads a blob at /blobs/<the id POST /blobs answered>, which is its url', async () => {
    const bytes = randomBytes(3000);
    const { blob, location } = await upload(alice, bytes);
    expect(blob.url).toBe(`/blobs/${blob.id}`);
    expect(location).toBe(blob.url);

    const got = await bytesOf(alice, `/blobs/${blob.id}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(bytes)).toBe(true);
    const head = await alice.request(`/blobs/${blob.id}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('3000');
    // A client that percent-encodes the path segment reaches the same blob.
    expect((await bytesOf(alice, `/blobs/${encodeURIComponent(blob.id)}`)).body.equals(bytes)).toBe(true);

    // GraphQL gives the same id and url, by id, as a node and in the list.
    const viewed = await alice.gql<{
      blob: BlobJson;
      node: BlobJson;
      blobs: { edges: { node: BlobJson }[] };
    }>(
      `query ($id: ID!) { blob(id: $id) { ${BLOB_FIELDS} } node(id: $id) { ... on Blob { ${BLOB_FIELDS} } } blobs { edges { node { ${BLOB_FIELDS} } } } }`,
      { id: blob.id },
    );
    expect(viewed.errors).toBeUndefined();
    expect(viewed.data?.blob).toEqual({ id: blob.id, url: blob.url, size: 3000, sha256: blob.sha256 });
    expect(viewed.data?.node).toEqual(viewed.data?.blob);
    for (const { node } of viewed.data!.blobs.edges) expect(node.url).toBe(`/blobs/${node.id}`);
  });

  it('gives the GraphQL upload the same form', async () => {
    const body = new FormData();
    body.set(
      'operations',
      JSON.stringify({
        query: `mutation ($file: File!) { uploadBlob(file: $file) { ${BLOB_FIELDS} } }`,
        variables: { file: null },
      }),
    );
    body.set('map', JSON.stringify({ 0: ['variables.file'] }));
    body.set('0', new Blob([randomBytes(100)]), 'small.bin');
    const response = await alice.request('/graphql', { method: 'POST', body, headers: CSRF });
    const result = (await response.json()) as { data?: { uploadBlob: BlobJson }; errors?: unknown };
    expect(result.errors).toBeUndefined();
    const blob = result.data!.uploadBlob;
    expect(blob.url).toBe(`/blobs/${blob.id}`);
    expect((await bytesOf(alice, blob.url)).status).toBe(200);
  });

  it('signs URLs on the same path; they work without credentials and for that blob only', async () => {
    const bytes = randomBytes(500);
    const { blob } = await upload(alice, bytes);
    const signed = await alice.gql(BlobSignedUrlDocument, { id: blob.id, expiresInSeconds: 60 });
    const url = signed.data!.blob!.signedUrl;
    expect(url.startsWith(`/blobs/${blob.id}?`)).toBe(true);
    const stranger = new TestClient(portico.url);
    const got = await bytesOf(stranger, url);
    expect(got.status).toBe(200);
    expect(got.body.equals(bytes)).toBe(true);
    const { blob: other } = await upload(alice, randomBytes(10));
    expect((await bytesOf(stranger, `${other.url}${new URL(url, portico.url).search}`)).status).toBe(404);
  });

  it('checks access the same way: 404 for others, for unknown and for malformed ids', async () => {
    const { blob } = await upload(alice, randomBytes(100));
    // One request id for both: it is the only part of an answer that may differ.
    const sameId = { headers: { 'x-request-id': 'blob-probe' } };
    const unknown = await bob.request(`/blobs/${toGlobalId('Blob', hex())}`, sameId);
    const foreign = await bob.request(blob.url, sameId);
    expect(unknown.status).toBe(404);
    expect(foreign.status).toBe(404);
    expect(await foreign.text()).toBe(await unknown.text());
    expect((await new TestClient(portico.url).request(blob.url)).status).toBe(404);

    for (const path of [
      `/blobs/${toGlobalId('User', rowIdOf(blob.id))}`,
      `/blobs/${toGlobalId('Blob', 'not-hex')}`,
      `/blobs/${toGlobalId('Blob', `${rowIdOf(blob.id)}/../x`)}`,
      // Only the canonical form: the same bytes without their padding are another string.
      `/blobs/${blob.id.replace(/=+$/, '')}`,
      '/blobs/%ZZ',
      '/blobs/QmxvYjo%00',
      `/blobs/${'Q'.repeat(5000)}`,
    ]) {
      const response = await alice.request(path);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type'), path).toContain('application/json');
    }
    expect(errorLines(portico.logs)).toEqual([]);
  });

  it('still serves the row id of paths handed out before, with the same checks', async () => {
    // Apps may have stored `url` values and signed URLs from before contract v2.
    const bytes = randomBytes(200);
    const { blob } = await upload(alice, bytes);
    const legacy = `/blobs/${rowIdOf(blob.id)}`;
    expect((await bytesOf(alice, legacy)).body.equals(bytes)).toBe(true);
    expect((await bob.request(legacy)).status).toBe(404);
    const signed = await alice.gql(BlobSignedUrlDocument, { id: blob.id, expiresInSeconds: 60 });
    const query = new URL(signed.data!.blob!.signedUrl, portico.url).search;
    expect((await bytesOf(new TestClient(portico.url), `${legacy}${query}`)).status).toBe(200);
  });
});
