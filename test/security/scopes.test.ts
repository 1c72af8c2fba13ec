import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClientCli } from '../../client/cli.ts';
import { credentialsPath, readSavedCredential } from '../../client/credentials.ts';
import {
  AcquireLeaseDocument,
  ApiKeysDocument,
  ApproveDeviceDocument,
  BlobDocument,
  BlobSignedUrlDocument,
  BlobsDocument,
  ChangePasswordDocument,
  CollectionsDocument,
  CountDocumentsDocument,
  CreateApiKeyDocument,
  DeleteDocumentDocument,
  DenyDeviceDocument,
  DocumentChangedDocument,
  DocumentDocument,
  DocumentsDocument,
  LeaseDocument,
  LogInDocument,
  PatchDocumentDocument,
  PutDocumentDocument,
  ReleaseLeaseDocument,
  RevokeApiKeyDocument,
  RevokeOtherSessionsDocument,
  RevokeSessionDocument,
  ScopesDocument,
  SignUpDocument,
  UsersDocument,
  ViewerDocument,
} from '../../client/index.ts';
import { fromGlobalId } from '../../src/index.ts';
import {
  backends,
  type Collected,
  collect,
  connectSse,
  connectWs,
  eventually,
  type GraphQLResponse,
  type Operation,
  queryText,
  startGatewayWithAdmin,
  TestClient,
  type TestGateway,
} from '../harness.ts';
import { errorLines, expectNoServerError, expectRefusal } from './answers.ts';

/**
 * API keys act only within their scopes (HTTP.md, Credentials, v2): the rules `authenticated`
 * and `owner` need the resource's scope for a key, and a key manages credentials only with
 * `admin`. Device-flow tokens are API keys.
 */
const CONFIG = {
  signup: 'open',
  // The members' role names no collection scope: `owner` and `authenticated` rules let them in.
  roles: { member: ['blobs:write'] },
  defaultRoles: ['member'],
  collections: {
    notes: { read: 'owner', write: 'owner' },
    board: { read: 'authenticated', write: 'authenticated' },
    news: { read: 'public', write: ['news:write'] },
    // A list rule that names a scope which `notes` also uses: only a role can pass it.
    digest: { read: ['notes:read'], write: ['notes:read'] },
  },
  device: { intervalSeconds: 1 },
};
const PASSWORD = 'a long enough passphrase';
const CSRF = { 'x-portico-csrf': '1' };
const GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** The patch the tests apply to a document. */
const CHANGED = { text: 'changed' };

interface Ticket {
  secret: string;
  id: string;
}

/** The contract codes of a stream's errors, whether they came as results or as a failure. */
function codesOf(collected: Collected<{ errors?: readonly unknown[] }>): string[] {
  const failure = collected.error;
  const failed = Array.isArray(failure) ? failure : failure ? [failure] : [];
  return [...collected.results.flatMap((result) => result.errors ?? []), ...failed].map(
    (error) => (error as { extensions?: { code?: string } }).extensions?.code ?? String(error),
  );
}

const data = <T>(result: GraphQLResponse<T>): T => {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data!;
};

describe.each(backends)('API keys act only within their scopes on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;
  /** The owner of everything the keys go after, signed in twice (two sessions). */
  let olive: TestClient;
  let oliveElsewhere: TestClient;
  let noteId: string;
  let boardId: string;
  let newsId: string;
  let blobId: string;
  let blobPath: string;

  /** Requests with the key `secret` alone, each from a new client. */
  const as = (secret: string) => {
    const authorization = `Bearer ${secret}`;
    function gql<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<GraphQLResponse<R>>;
    function gql<T = Record<string, unknown>>(
      query: string,
      variables?: Record<string, unknown>,
    ): Promise<GraphQLResponse<T>>;
    function gql(operation: Operation, variables?: Record<string, unknown>) {
      return portico.client().gql(queryText(operation), variables, { authorization });
    }
    return {
      gql,
      request: (path: string, init: RequestInit = {}) =>
        portico.client().request(path, {
          ...init,
          headers: { ...(init.headers as Record<string, string>), authorization },
        }),
    };
  };

  const createKey = async (client: TestClient, name: string, scopes: string[]): Promise<Ticket> => {
    const { createApiKey } = data(await client.gql(CreateApiKeyDocument, { name, scopes }));
    return { secret: createApiKey.secret, id: createApiKey.apiKey.id };
  };

  const form = (path: string, fields: Record<string, string>) =>
    fetch(new URL(path, portico.url), { method: 'POST', body: new URLSearchParams(fields) });
  /** A device login approved by `approver`'s browser session; `scope` undefined sends no `scope` field. */
  const deviceToken = async (approver: TestClient, clientId: string, scope?: string) => {
    const started = (await (
      await form('/oauth/device_authorization', {
        client_id: clientId,
        ...(scope === undefined ? {} : { scope }),
      })
    ).json()) as { device_code: string; user_code: string };
    data(await approver.gql(ApproveDeviceDocument, { userCode: started.user_code }));
    const token = await form('/oauth/token', {
      grant_type: GRANT,
      device_code: started.device_code,
      client_id: clientId,
    });
    expect(token.status).toBe(200);
    return (await token.json()) as { access_token: string; scope: string };
  };

  const signIn = async (client: TestClient, email: string, password = PASSWORD) =>
    client.gql(LogInDocument, { email, password });

  /** What Olive sees of her own things through her session: the state refusals must leave alone. */
  const oliveState = async () => {
    const read = async (collection: string, id: string) =>
      data(await olive.gql(DocumentDocument, { collection, id })).document;
    const count = async (collection: string) =>
      data(await olive.gql(CountDocumentsDocument, { collection })).countDocuments;
    return {
      note: await read('notes', noteId),
      board: await read('board', boardId),
      notes: await count('notes'),
      boards: await count('board'),
      blobs: data(await olive.gql(BlobsDocument)).blobs.edges.length,
      sessions: data(await olive.gql(ViewerDocument))
        .viewer.sessions.map((session) => session.id)
        .sort(),
      keys: data(await olive.gql(ApiKeysDocument))
        .viewer.apiKeys.map((key) => key.id)
        .sort(),
      lease: data(await admin.gql(LeaseDocument, { key: 'olive-job' })).lease,
    };
  };

  beforeAll(async () => {
    ({ portico, admin } = await startGatewayWithAdmin({ backend, config: CONFIG }));
    olive = portico.client();
    data(await olive.gql(SignUpDocument, { input: { email: 'olive@example.com', password: PASSWORD } }));
    oliveElsewhere = portico.client();
    data(await signIn(oliveElsewhere, 'olive@example.com'));

    const put = async (client: TestClient, collection: string, text: string) =>
      data(await client.gql(PutDocumentDocument, { collection, data: { text } })).putDocument.id;
    noteId = await put(olive, 'notes', 'private note');
    boardId = await put(olive, 'board', 'for the team');
    newsId = await put(admin, 'news', 'hello world');
    const uploaded = await olive.request('/blobs?filename=secret.txt', {
      method: 'POST',
      headers: { ...CSRF, 'content-type': 'text/plain' },
      body: 'the bytes of a private blob',
    });
    expect(uploaded.status).toBe(201);
    ({ id: blobId, url: blobPath } = (await uploaded.json()) as { id: string; url: string });
  });
  afterAll(() => portico?.close());

  /**
   * `portico login` in this process, approved by `approver`'s browser session: what it printed,
   * its exit code and the key it saved.
   */
  const cliLogin = async (approver: TestClient, args: string[] = []) => {
    const home = await mkdtemp(join(tmpdir(), 'portico-scopes-'));
    const env = { XDG_CONFIG_HOME: home };
    const out: string[] = [];
    let approved: Promise<GraphQLResponse<unknown>> | undefined;
    try {
      const code = await runClientCli(['login', portico.url, ...args], {
        env,
        out: (text) => {
          out.push(text);
          const userCode = /shows the code ([A-Z]{4}-[A-Z]{4})/.exec(text)?.[1];
          if (userCode) {
            approved = approver.gql(ApproveDeviceDocument, { userCode });
          }
        },
        err: (text) => out.push(text),
      });
      const printed = out.join('\n');
      expect(code, printed).toBe(0);
      data(await approved!);
      const saved = await readSavedCredential(portico.url, credentialsPath(env));
      const scopes = /^Scopes: (.+)\.$/m.exec(printed)?.[1]?.split(' ') ?? [];
      return { printed, scopes, saved: saved!, key: as(saved!.apiKey) };
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  };

  /** Every scope this configuration gives meaning to (the `scopes` query), `admin` included. */
  const KNOWN_SCOPES = [
    'admin',
    'blobs:read',
    'blobs:write',
    'board:read',
    'board:write',
    'leases',
    'news:write',
    'notes:read',
    'notes:write',
    'store:serve',
  ];
  /** What a member may give a key: `blobs:write` from the role, the rest every signed-in user has. */
  const MEMBER_GRANTABLE = [
    'blobs:read',
    'blobs:write',
    'board:read',
    'board:write',
    'leases',
    'notes:read',
    'notes:write',
  ];

  describe.each([
    {
      what: 'a key created with no scopes',
      secret: async () => (await createKey(olive, 'bare', [])).secret,
    },
    {
      what: 'a device-flow token that asked for nothing',
      secret: async () => {
        // No `scope` field at all: asked ∩ Olive's = ∅, not a default set.
        const token = await deviceToken(olive, 'plain-cli');
        expect(token.scope).toBe('');
        return token.access_token;
      },
    },
    {
      what: 'a device-flow token granted nothing',
      secret: async () => {
        // Olive asks for a scope she lacks: the token holds none.
        const token = await deviceToken(olive, 'greedy-cli', 'admin');
        expect(token.scope).toBe('');
        return token.access_token;
      },
    },
  ])('$what', ({ secret: make }) => {
    let key: ReturnType<typeof as>;
    let secret: string;
    let keyId: string;
    beforeAll(async () => {
      secret = await make();
      key = as(secret);
      keyId = data(await key.gql(ApiKeysDocument)).viewer.apiKey!.id;
    });

    it('still reads public data and its own viewer', async () => {
      const viewer = data(await key.gql(ViewerDocument)).viewer;
      expect(viewer.user?.email).toBe('olive@example.com');
      expect(viewer.scopes).toEqual([]);
      expect(viewer.session).toBeNull();
      const news = data(await key.gql(DocumentDocument, { collection: 'news', id: newsId }));
      expect(news.document?.data).toEqual({ text: 'hello world' });
      const collections = data(await key.gql(CollectionsDocument));
      expect(collections.collections.map((collection) => collection.name)).toEqual(['news']);
    });

    it.each(['notes', 'board'])('cannot read or change the documents of %s', async (collection) => {
      const before = await oliveState();
      const id = collection === 'notes' ? noteId : boardId;
      for (const attempt of [
        () => key.gql(DocumentDocument, { collection, id }),
        () => key.gql(DocumentsDocument, { collection }),
        () => key.gql(CountDocumentsDocument, { collection }),
        () => key.gql(PutDocumentDocument, { collection, data: { text: 'planted' } }),
        () => key.gql(PutDocumentDocument, { collection, id, data: { text: 'replaced' } }),
        () => key.gql(PatchDocumentDocument, { collection, id, patch: CHANGED }),
        () => key.gql(DeleteDocumentDocument, { collection, id }),
      ]) {
        const result = await attempt();
        expectRefusal(result, 'FORBIDDEN');
        expect(Object.values(result.data ?? {}).filter((value) => value !== null)).toEqual([]);
      }
      expect(await oliveState()).toEqual(before);
      expect(before.note).toMatchObject({ data: { text: 'private note' } });
    });

    it.each(['sse', 'ws'] as const)('cannot follow the changes of a collection (%s)', async (transport) => {
      const changes = { query: queryText(DocumentChangedDocument), variables: { collection: 'notes' } };
      const stream = collect(
        transport === 'sse'
          ? connectSse(portico.url, { apiKey: secret }).iterate(changes)
          : connectWs(portico.url, { apiKey: secret }).client.iterate(changes),
      );
      let settled = false;
      void stream.done.then(() => {
        settled = true;
      });
      const live = () =>
        portico.gateway.runtime.live.tracked('apiKey').includes(fromGlobalId(keyId, 'ApiKey'));
      await eventually(() => settled || live(), 'the subscription to be refused or live');
      // Were it subscribed, this change would be its first event.
      data(await olive.gql(PatchDocumentDocument, { collection: 'notes', id: noteId, patch: CHANGED }));
      await eventually(() => settled || stream.results.length > 0, 'the refusal or an event');
      stream.stop();
      expect(codesOf(stream)).toContain('FORBIDDEN');
      expect(stream.results.filter((result) => result.data)).toEqual([]);
      data(
        await olive.gql(PutDocumentDocument, {
          collection: 'notes',
          id: noteId,
          data: { text: 'private note' },
        }),
      );
    });

    it('cannot read or upload blobs, over GraphQL or HTTP', async () => {
      const before = await oliveState();
      expect(data(await key.gql(BlobDocument, { id: blobId })).blob).toBeNull();
      const node = await key.gql<{ node: unknown }>(
        'query ($id: ID!) { node(id: $id) { ... on Blob { id signedUrl } } }',
        { id: blobId },
      );
      expectNoServerError(node);
      expect(node.data?.node ?? null).toBeNull();
      expectRefusal(await key.gql(BlobsDocument), 'FORBIDDEN');
      expect((await key.request(blobPath)).status).toBe(404);
      expect((await key.request(blobPath, { method: 'HEAD' })).status).toBe(404);
      const upload = await key.request('/blobs', { method: 'POST', body: 'planted' });
      expect(upload.status).toBe(403);
      expect(await oliveState()).toEqual(before);
    });

    it('cannot hold leases', async () => {
      const before = await oliveState();
      expectRefusal(await key.gql(AcquireLeaseDocument, { key: 'olive-job', ttlSeconds: 60 }), 'FORBIDDEN');
      expectRefusal(await key.gql(LeaseDocument, { key: 'olive-job' }), 'FORBIDDEN');
      expect(await oliveState()).toEqual(before);
      expect(before.lease).toBeNull();
    });

    it('cannot manage credentials: keys, sessions, password, devices', async () => {
      const sibling = await createKey(olive, 'sibling', []);
      const before = await oliveState();
      const otherSession = data(await oliveElsewhere.gql(ViewerDocument)).viewer.session!.id;
      const pending = (await (
        await form('/oauth/device_authorization', { client_id: 'victim-cli' })
      ).json()) as {
        device_code: string;
        user_code: string;
      };

      for (const attempt of [
        () => key.gql(CreateApiKeyDocument, { name: 'outlives me', scopes: [] }),
        () => key.gql(RevokeApiKeyDocument, { id: sibling.id }),
        () => key.gql(RevokeSessionDocument, { id: otherSession }),
        () => key.gql(RevokeOtherSessionsDocument),
        () =>
          key.gql(ChangePasswordDocument, { currentPassword: PASSWORD, newPassword: 'taken over by a key' }),
        () => key.gql(ApproveDeviceDocument, { userCode: pending.user_code }),
        () => key.gql(DenyDeviceDocument, { userCode: pending.user_code }),
      ]) {
        const result = await attempt();
        expectRefusal(result, 'FORBIDDEN');
        expect(Object.values(result.data ?? {}).filter((value) => value !== null)).toEqual([]);
      }

      // Nothing changed: the same sessions and keys, the sibling key works, the password is the old one.
      expect(await oliveState()).toEqual(before);
      expect(before.keys).toContain(sibling.id);
      expect(before.sessions).toContain(otherSession);
      expect(data(await as(sibling.secret).gql(ApiKeysDocument)).viewer.apiKey?.id).toBe(sibling.id);
      expect(data(await oliveElsewhere.gql(ViewerDocument)).viewer.session?.id).toBe(otherSession);
      expect(data(await signIn(new TestClient(portico.url), 'olive@example.com'))).toBeTruthy();
      const poll = await form('/oauth/token', {
        grant_type: GRANT,
        device_code: pending.device_code,
        client_id: 'victim-cli',
      });
      expect(await poll.json()).toEqual({ error: 'authorization_pending' });
      expect(errorLines(portico.logs)).toEqual([]);
    });

    it('may still revoke itself (signing out)', async () => {
      const own = as((await createKey(olive, 'leaving', [])).secret);
      const ownId = data(await own.gql(ApiKeysDocument)).viewer.apiKey!.id;
      expect(data(await own.gql(RevokeApiKeyDocument, { id: ownId })).revokeApiKey).toBe(true);
      expect(data(await own.gql(ViewerDocument)).viewer.user).toBeNull();
      // The key under test is untouched by the other's sign-out.
      expect(data(await key.gql(ApiKeysDocument)).viewer.apiKey?.id).toBe(keyId);
    });
  });

  it('a key with exactly notes:read reads the notes but cannot write them; with notes:write it writes', async () => {
    const reader = as((await createKey(olive, 'reader', ['notes:read'])).secret);
    const before = await oliveState();
    const read = data(await reader.gql(DocumentDocument, { collection: 'notes', id: noteId }));
    expect(read.document?.data).toEqual({ text: 'private note' });
    expect(data(await reader.gql(CountDocumentsDocument, { collection: 'notes' })).countDocuments).toBe(
      before.notes,
    );
    expectRefusal(
      await reader.gql(PatchDocumentDocument, { collection: 'notes', id: noteId, patch: CHANGED }),
      'FORBIDDEN',
    );
    expectRefusal(await reader.gql(DeleteDocumentDocument, { collection: 'notes', id: noteId }), 'FORBIDDEN');
    expectRefusal(
      await reader.gql(PutDocumentDocument, { collection: 'notes', data: { text: 'planted' } }),
      'FORBIDDEN',
    );
    // notes:read reaches notes only, not the board.
    expectRefusal(await reader.gql(DocumentDocument, { collection: 'board', id: boardId }), 'FORBIDDEN');
    expect(await oliveState()).toEqual(before);

    const writer = as((await createKey(olive, 'writer', ['notes:write'])).secret);
    const created = data(
      await writer.gql(PutDocumentDocument, { collection: 'notes', data: { text: 'by the writer' } }),
    ).putDocument;
    const mine = { collection: 'notes', id: created.id };
    expect(data(await writer.gql(PatchDocumentDocument, { ...mine, patch: CHANGED }))).toMatchObject({
      patchDocument: { version: 2 },
    });
    expectRefusal(await writer.gql(DocumentDocument, mine), 'FORBIDDEN');
    const changed = data(await olive.gql(DocumentDocument, mine)).document;
    expect(changed).toMatchObject({ id: created.id, version: 2 });
    expect(changed?.data).toEqual(CHANGED);
    expect(data(await writer.gql(DeleteDocumentDocument, mine)).deleteDocument).toBe(true);
    expect(data(await olive.gql(DocumentDocument, mine)).document).toBeNull();
  });

  it('a key holds the scopes its user can use, and a list rule still needs the role', async () => {
    // notes:read comes with signing in (rule owner), news:write only with a role Olive lacks.
    expectRefusal(
      await olive.gql(CreateApiKeyDocument, { name: 'beyond', scopes: ['news:write'] }),
      'FORBIDDEN',
    );
    const reader = as((await createKey(olive, 'notes reader', ['notes:read'])).secret);
    // `digest` asks for the scope notes:read itself: Olive's roles lack it, so her key cannot read it either.
    expectRefusal(await olive.gql(CountDocumentsDocument, { collection: 'digest' }), 'FORBIDDEN');
    expectRefusal(await reader.gql(CountDocumentsDocument, { collection: 'digest' }), 'FORBIDDEN');
    expect(data(await reader.gql(ViewerDocument)).viewer.scopes).toEqual([]);
  });

  it('blobs need blobs:read and blobs:write, and a signed URL grants only what its signer reads', async () => {
    const uploader = as((await createKey(olive, 'uploader', ['blobs:write'])).secret);
    const upload = await uploader.request('/blobs', { method: 'POST', body: 'uploaded by a key' });
    expect(upload.status).toBe(201);
    const own = (await upload.json()) as { id: string; url: string };
    // Writing is not reading, not even its own upload, nor signing a URL for it.
    expect((await uploader.request(own.url)).status).toBe(404);
    const signed = await uploader.gql(BlobSignedUrlDocument, { id: own.id });
    expect(data(signed).blob).toBeNull();

    // Over GraphQL the uploader sees what it uploaded, as POST /blobs shows it, but signs no URL for it.
    const multipart = (query: string) => {
      const body = new FormData();
      body.set('operations', JSON.stringify({ query, variables: { file: null } }));
      body.set('map', JSON.stringify({ 0: ['variables.file'] }));
      body.set('0', new File(['uploaded over GraphQL'], 'note.txt', { type: 'text/plain' }));
      return uploader.request('/graphql', { method: 'POST', body, headers: CSRF });
    };
    const viaGraphql = (await (
      await multipart('mutation ($file: File!) { uploadBlob(file: $file) { id size filename } }')
    ).json()) as GraphQLResponse<{ uploadBlob: { id: string; size: number } }>;
    expect(viaGraphql.errors).toBeUndefined();
    expect(viaGraphql.data?.uploadBlob).toMatchObject({ size: 21, filename: 'note.txt' });
    const signing = (await (
      await multipart('mutation ($file: File!) { uploadBlob(file: $file) { id signedUrl } }')
    ).json()) as GraphQLResponse<{ uploadBlob: unknown }>;
    expectRefusal({ ...signing, status: 200, headers: new Headers() }, 'FORBIDDEN');
    expect(JSON.stringify(signing)).not.toContain('sig=');

    const downloader = as((await createKey(olive, 'downloader', ['blobs:read'])).secret);
    const download = await downloader.request(blobPath);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('the bytes of a private blob');
    const url = data(await downloader.gql(BlobSignedUrlDocument, { id: blobId })).blob!.signedUrl;
    expect((await fetch(new URL(url, portico.url))).status).toBe(200);
    expect((await downloader.request('/blobs', { method: 'POST', body: 'no' })).status).toBe(403);
  });

  it('leases need leases', async () => {
    const worker = as((await createKey(olive, 'worker', ['leases'])).secret);
    const lease = data(await worker.gql(AcquireLeaseDocument, { key: 'worker-job', ttlSeconds: 60 }))
      .acquireLease!;
    expect(lease.token).toBeGreaterThan(0);
    expect(
      data(await worker.gql(ReleaseLeaseDocument, { key: 'worker-job', token: lease.token })).releaseLease,
    ).toBe(true);
  });

  it('a key holding admin manages credentials', async () => {
    const adminKey = as((await createKey(admin, 'admin tool', ['admin'])).secret);
    const minted = data(
      await adminKey.gql(CreateApiKeyDocument, { name: 'minted', scopes: [] }),
    ).createApiKey;
    expect(data(await adminKey.gql(RevokeApiKeyDocument, { id: minted.apiKey.id })).revokeApiKey).toBe(true);
    const elsewhere = new TestClient(portico.url);
    data(await signIn(elsewhere, 'olive@example.com'));
    const sessionId = data(await elsewhere.gql(ViewerDocument)).viewer.session!.id;
    expect(data(await adminKey.gql(RevokeSessionDocument, { id: sessionId })).revokeSession).toBe(true);
    expect(data(await elsewhere.gql(ViewerDocument)).viewer.user).toBeNull();
  });

  it('a device login with an empty or blank scope gets no scopes either, and the page says so first', async () => {
    for (const scope of ['', '   ']) {
      const started = (await (
        await form('/oauth/device_authorization', { client_id: 'blank-cli', scope })
      ).json()) as { user_code: string };
      const page = await (await olive.request(`/device?user_code=${started.user_code}`)).text();
      expect(page).toContain('with no scopes');
      expect(page).not.toContain('notes:read');
    }
    const before = await oliveState();
    const token = await deviceToken(olive, 'blank-cli', ' ');
    expect(token.scope).toBe('');
    const device = as(token.access_token);
    expect(data(await device.gql(ViewerDocument)).viewer.scopes).toEqual([]);
    expectRefusal(await device.gql(DocumentDocument, { collection: 'notes', id: noteId }), 'FORBIDDEN');
    expectRefusal(await device.gql(DeleteDocumentDocument, { collection: 'notes', id: noteId }), 'FORBIDDEN');
    expect((await device.request(blobPath)).status).toBe(404);
    const after = await oliveState();
    // The approved device's key is Olive's new key; nothing else moved.
    expect({ ...after, keys: after.keys.filter((id) => !before.keys.includes(id)).length }).toEqual({
      ...before,
      keys: 1,
    });
  });

  it('the RFC 8414 metadata lists every scope the gateway knows, the same as the scopes query', async () => {
    const metadata = (await (
      await fetch(new URL('/.well-known/oauth-authorization-server', portico.url))
    ).json()) as { scopes_supported: string[] };
    expect(metadata.scopes_supported).toEqual(KNOWN_SCOPES);
    const listed = data(await admin.gql(ScopesDocument)).scopes;
    expect(listed.map((scope) => scope.name)).toEqual(metadata.scopes_supported);
  });

  it('portico login without --scope, approved by an admin, gets every scope but admin and mints no keys', async () => {
    const { printed, scopes, saved, key } = await cliLogin(admin);
    expect(printed).toContain('No --scope given');
    expect(scopes).toEqual(KNOWN_SCOPES.filter((scope) => scope !== 'admin'));
    expect(saved.grantedScope.split(' ')).toEqual(scopes);
    // The login's default, asked again as such when the key is refused.
    expect(saved.requestedScope).toBeUndefined();
    expect(data(await key.gql(ViewerDocument)).viewer.user?.email).toBe('admin@example.com');

    const keys = async () =>
      data(await admin.gql(ApiKeysDocument))
        .viewer.apiKeys.map((k) => k.id)
        .sort();
    const before = await keys();
    expectRefusal(await key.gql(CreateApiKeyDocument, { name: 'escalate', scopes: ['admin'] }), 'FORBIDDEN');
    expectRefusal(await key.gql(CreateApiKeyDocument, { name: 'sidekick', scopes: [] }), 'FORBIDDEN');
    expectRefusal(await key.gql(UsersDocument), 'FORBIDDEN');
    expect(await keys()).toEqual(before);
  });

  it('portico login without --scope, approved by a member, gets exactly what the member may give a key', async () => {
    const grantable = data(await olive.gql(ScopesDocument)).scopes.filter((scope) => scope.grantable);
    expect(grantable.map((scope) => scope.name)).toEqual(MEMBER_GRANTABLE);

    const { scopes, key } = await cliLogin(olive);
    expect(scopes).toEqual(MEMBER_GRANTABLE);
    // Control: such a key reads Olive's note, so a token that asked for nothing and got this
    // set (the refused default) would fail the refusals above.
    const note = data(await key.gql(DocumentDocument, { collection: 'notes', id: noteId }));
    expect(note.document?.data).toEqual({ text: 'private note' });
    expectRefusal(
      await key.gql(PutDocumentDocument, { collection: 'news', data: { text: 'not hers' } }),
      'FORBIDDEN',
    );
  });

  it('portico login --scope asks for exactly those', async () => {
    const { printed, scopes, saved } = await cliLogin(olive, ['--scope', 'notes:read news:write']);
    expect(printed).not.toContain('No --scope given');
    expect(scopes).toEqual(['notes:read']);
    expect(saved.requestedScope).toBe('notes:read news:write');
  });
});
