import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type DocumentNode, getOperationAST, Kind, parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  AcquireLeaseDocument,
  ApiKeysDocument,
  ApproveDeviceDocument,
  AuditEventsDocument,
  BlobDocument,
  BlobSignedUrlDocument,
  BlobsDocument,
  type ClientOptions,
  CollectionsDocument,
  CountDocumentsDocument,
  CreateApiKeyDocument,
  CreateInviteDocument,
  createClient,
  DeleteBlobDocument,
  DeleteDocumentDocument,
  DenyDeviceDocument,
  DocumentChangedDocument,
  DocumentDocument,
  DocumentsDocument,
  InvitesDocument,
  LeaseDocument,
  LeasesDocument,
  LogInDocument,
  PatchDocumentDocument,
  type PorticoClient,
  PorticoClientError,
  PutDocumentDocument,
  ReleaseLeaseDocument,
  RenewLeaseDocument,
  RevokeApiKeyDocument,
  RevokeInviteDocument,
  RevokeUserSessionsDocument,
  ScopesDocument,
  SessionEventsDocument,
  SessionRevokedDocument,
  SignUpDocument,
  UsersDocument,
  ViewerDocument,
} from '../client/index.ts';
import { backends, freePort, startGatewayWithAdmin, type TestClient, type TestGateway } from './harness.ts';

/** The operation files this suite covers; each of their operations must run below. */
const OPERATION_FILES = ['invites', 'api-keys', 'audit', 'collections', 'blobs', 'leases', 'subscriptions'];

const MAX_BYTES = 512 * 1024;
const PASSWORD = 'a long enough passphrase';
/** The member's account; the programs under test act as them. */
const MEMBER = { email: 'member@example.com', password: PASSWORD };

const CONFIG = {
  signup: 'open',
  roles: { member: ['notes:read', 'notes:write', 'blobs:write'] },
  defaultRoles: ['member'],
  collections: { notes: { indexes: { byTopic: ['topic'] } } },
  blobs: { maxBytes: MAX_BYTES },
};

/** Rejects with the client's error, for assertions on its code. */
async function failure(promise: Promise<unknown>): Promise<PorticoClientError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PorticoClientError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

/** The promise's value, or 'timeout' when it takes longer than `ms`. */
const within = <T>(pending: Promise<T>, ms: number) =>
  Promise.race([pending, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms))]);

describe.each(backends)('the typed client against a gateway on %s', (backend) => {
  let portico: TestGateway;
  let browser: TestClient;
  let configHome: string;
  let admin: PorticoClient;
  /** A program of the member's: an API key with the scopes its work needs (no admin). */
  let member: PorticoClient;
  let memberId: string;
  const executed = new Set<string>();

  /** A client that notes the operation of every document it is given, whatever the transport. */
  const connect = (options: ClientOptions): PorticoClient => {
    const client = createClient(options);
    const noted = (document: DocumentNode) => executed.add(getOperationAST(document)?.name?.value ?? '');
    return {
      ...client,
      query: (document, variables, requestOptions) => {
        noted(document);
        return client.query(document, variables, requestOptions);
      },
      mutate: (document, variables, requestOptions) => {
        noted(document);
        return client.mutate(document, variables, requestOptions);
      },
      subscribe: (document, variables, subscribeOptions) => {
        noted(document);
        return client.subscribe(document, variables, subscribeOptions);
      },
    };
  };

  /** The member signed in afresh in a browser: it manages their keys, which their programs' keys cannot. */
  const memberBrowser = async () => {
    const browserOfMember = portico.client();
    await browserOfMember.gql(LogInDocument, MEMBER);
    return connect({ url: portico.url, headers: { cookie: browserOfMember.cookieHeader } });
  };

  beforeAll(async () => {
    // No apiKey means the key `portico login` saved: an empty folder, so none.
    configHome = await mkdtemp(join(tmpdir(), 'portico-client-config-'));
    process.env.XDG_CONFIG_HOME = configHome;
    ({ portico, admin: browser } = await startGatewayWithAdmin({ backend, config: CONFIG }));
    const session = connect({
      url: portico.url,
      headers: { cookie: browser.cookieHeader },
    });
    const adminKey = await session.mutate(CreateApiKeyDocument, { name: 'tests', scopes: ['admin'] });
    admin = connect({ url: portico.url, apiKey: adminKey.createApiKey.secret });

    const signedUp = await portico.client().gql(SignUpDocument, { input: MEMBER });
    memberId = signedUp.data!.signUp.user.id;
    const memberKey = await (await memberBrowser()).mutate(CreateApiKeyDocument, {
      name: 'member',
      scopes: ['notes:read', 'notes:write', 'blobs:read', 'blobs:write', 'leases'],
    });
    member = connect({ url: portico.url, apiKey: memberKey.createApiKey.secret });
  });
  afterAll(async () => {
    await Promise.all([admin?.close(), member?.close()]);
    await portico?.close();
    await rm(configHome, { recursive: true, force: true });
  });

  it('runs typed queries and mutations', async () => {
    const { viewer } = await admin.query(ViewerDocument);
    expect(viewer.user?.email).toBe('admin@example.com');
    expect(viewer.scopes).toEqual(['admin']);

    const { putDocument } = await member.mutate(PutDocumentDocument, {
      collection: 'notes',
      id: 'n1',
      data: { topic: 'client', text: 'hello' },
    });
    expectTypeOf(putDocument.version).toEqualTypeOf<number>();
    expectTypeOf(putDocument.data).toEqualTypeOf<Record<string, unknown>>();
    expect(putDocument).toMatchObject({ collection: 'notes', id: 'n1', version: 1, owner: { id: memberId } });

    const { patchDocument } = await member.mutate(PatchDocumentDocument, {
      collection: 'notes',
      id: 'n1',
      patch: { text: 'hello again' },
      expectedVersion: 1,
    });
    expect(patchDocument).toMatchObject({ version: 2, data: { topic: 'client', text: 'hello again' } });
    const { document } = await member.query(DocumentDocument, { collection: 'notes', id: 'n1' });
    expect(document?.data.text).toBe('hello again');
    const { documents } = await member.query(DocumentsDocument, {
      collection: 'notes',
      index: 'byTopic',
      where: { eq: { topic: 'client' } },
      order: 'DESC',
      first: 10,
    });
    expect(documents.edges.map((edge) => edge.node.id)).toEqual(['n1']);
    const { countDocuments } = await member.query(CountDocumentsDocument, {
      collection: 'notes',
      index: 'byTopic',
      where: { eq: { topic: 'client' } },
    });
    expect(countDocuments).toBe(1);
    const { collections } = await member.query(CollectionsDocument);
    expect(collections).toEqual([
      { name: 'notes', writable: true, indexes: [{ name: 'byTopic', fields: ['topic'], unique: false }] },
    ]);
  });

  it('rejects with the contract codes, the HTTP status and a client-side NETWORK_ERROR', async () => {
    const anonymous = createClient({ url: portico.url });
    const unauthenticated = await failure(anonymous.query(UsersDocument));
    expect(unauthenticated.code).toBe('UNAUTHENTICATED');
    expect(unauthenticated.errors[0]?.path).toEqual(['users']);

    expect((await failure(member.query(UsersDocument))).code).toBe('FORBIDDEN');
    expect((await failure(admin.query(UsersDocument, { first: -1 }))).code).toBe('BAD_USER_INPUT');
    const invalid = await failure(
      admin.query(parse('{ noSuchField }') as TypedDocumentNode<unknown, unknown>),
    );
    expect(invalid).toMatchObject({ code: 'BAD_USER_INPUT', status: 400 });
    const conflict = await failure(
      member.mutate(PutDocumentDocument, { collection: 'notes', id: 'n1', data: {}, expectedVersion: 1 }),
    );
    expect(conflict.code).toBe('CONFLICT');

    const closedPort = await freePort();
    const unreachable = await failure(
      createClient({ url: `http://127.0.0.1:${closedPort}` }).query(ViewerDocument),
    );
    expect(unreachable.code).toBe('NETWORK_ERROR');
    expect(unreachable.message).toContain('ECONNREFUSED');

    const aborted = admin.query(ViewerDocument, undefined, { signal: AbortSignal.abort() });
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
  });

  it.each(['ws', 'sse'] as const)(
    'follows documentChanged over %s, typed, until return()',
    async (transport) => {
      const changes = member.subscribe(DocumentChangedDocument, { collection: 'notes' }, { transport });
      // The stream is live once a write comes through: write until one does.
      const first = changes.next();
      let attempt = 0;
      let arrived: IteratorResult<unknown> | 'timeout' = 'timeout';
      while (arrived === 'timeout' && attempt < 50) {
        await member.mutate(PutDocumentDocument, { collection: 'notes', id: `warm-${attempt++}`, data: {} });
        arrived = await within(first, 200);
      }
      expect(arrived).not.toBe('timeout');

      await member.mutate(PutDocumentDocument, {
        collection: 'notes',
        id: transport,
        data: { topic: transport },
      });
      await member.mutate(DeleteDocumentDocument, { collection: 'notes', id: transport });
      const seen: unknown[] = [];
      for await (const { documentChanged } of changes) {
        expectTypeOf(documentChanged.kind).toEqualTypeOf<'CREATED' | 'UPDATED' | 'DELETED'>();
        if (documentChanged.id !== transport) continue;
        seen.push([documentChanged.kind, documentChanged.document?.data ?? null]);
        if (seen.length === 2) break;
      }
      expect(seen).toEqual([
        ['CREATED', { topic: transport }],
        ['DELETED', null],
      ]);

      // return() also ends a read that is already waiting.
      const quiet = member.subscribe(
        DocumentChangedDocument,
        { collection: 'notes', id: 'never' },
        { transport },
      );
      const waiting = quiet.next();
      await quiet.return?.();
      expect(await waiting).toEqual({ value: undefined, done: true });
      const aborted = new AbortController();
      const stopped = member.subscribe(
        DocumentChangedDocument,
        { collection: 'notes' },
        { transport, signal: aborted.signal },
      );
      const pending = stopped.next();
      aborted.abort();
      expect(await pending).toEqual({ value: undefined, done: true });
    },
  );

  it('says when its WebSocket opens and closes (onSocketChange)', async () => {
    const changes: boolean[] = [];
    const watcher = createClient({
      url: portico.url,
      apiKey: (await admin.mutate(CreateApiKeyDocument, { name: 'socket watcher', scopes: [] })).createApiKey
        .secret,
      onSocketChange: (open) => changes.push(open),
    });
    const revocations = watcher.subscribe(SessionRevokedDocument);
    const pending = revocations.next();
    await expect.poll(() => changes).toEqual([true]);
    await watcher.close();
    await expect.poll(() => changes).toEqual([true, false]);
    await revocations.return?.();
    await within(pending, 1000);
  });

  it('ends sessionRevoked over SSE with the reason when the session is revoked', async () => {
    const phone = portico.client();
    await phone.gql(LogInDocument, MEMBER);
    const session = connect({
      url: portico.url,
      headers: { cookie: phone.cookieHeader },
    });
    const revocations = session.subscribe(SessionRevokedDocument, undefined, { transport: 'sse' });
    const next = revocations.next();
    // Give the stream time to reach the gateway's pub/sub before revoking.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { revokeUserSessions } = await admin.mutate(RevokeUserSessionsDocument, { userId: memberId });
    expect(revokeUserSessions).toBeGreaterThan(0);
    const result = await next;
    expect(result.done).toBe(false);
    expect(result.value).toMatchObject({ sessionRevoked: { reason: 'ADMIN' } });
    expect(await revocations.next()).toEqual({ value: undefined, done: true });

    const anonymous = createClient({ url: portico.url }).subscribe(SessionRevokedDocument, undefined, {
      transport: 'sse',
    });
    expect((await failure(anonymous.next())).code).toBe('UNAUTHENTICATED');
  });

  it('ends sessionRevoked over the WebSocket when its key is revoked, and refuses a revoked key', async () => {
    const memberSession = await memberBrowser();
    const { createApiKey } = await memberSession.mutate(CreateApiKeyDocument, {
      name: 'watcher',
      scopes: [],
    });
    const watcher = createClient({ url: portico.url, apiKey: createApiKey.secret });
    const revocations = watcher.subscribe(SessionRevokedDocument);
    const next = revocations.next();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await memberSession.mutate(RevokeApiKeyDocument, { id: createApiKey.apiKey.id });
    expect(await next).toMatchObject({
      done: false,
      value: { sessionRevoked: { sessionId: createApiKey.apiKey.id, reason: 'REVOKED' } },
    });
    expect(await revocations.next()).toEqual({ value: undefined, done: true });

    // The gateway closes a connection presenting a key that no longer works with 4403.
    const refused = await failure(watcher.subscribe(SessionRevokedDocument).next());
    expect(refused.code).toBe('UNAUTHENTICATED');
    await watcher.close();
  });

  it('streams sessionEvents to an admin over the WebSocket, until close()', async () => {
    const events = admin.subscribe(SessionEventsDocument, { userId: memberId });
    const first = events.next();
    // The stream is live once a login comes through: log in until one does.
    let arrived: IteratorResult<unknown> | 'timeout' = 'timeout';
    for (let attempt = 0; arrived === 'timeout' && attempt < 50; attempt++) {
      await portico.client().gql(LogInDocument, MEMBER);
      arrived = await within(first, 200);
    }
    expect(arrived).toMatchObject({
      done: false,
      value: {
        sessionEvents: { kind: 'CREATED', reason: null, session: { user: { email: 'member@example.com' } } },
      },
    });
    const pending = events.next();
    await admin.close();
    expect(await within(pending, 2000)).toEqual({ value: undefined, done: true });
  });

  it('uploads a blob with progress up to its total, and reads it back', async () => {
    const bytes = new Uint8Array(300 * 1024).map((_, index) => index % 251);
    const progress: [number, number][] = [];
    const uploaded = await member.uploadBlob(new Blob([bytes], { type: 'application/x-test' }), {
      filename: 'data/report.bin',
      onProgress: (loaded, total) => progress.push([loaded, total]),
    });
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual([bytes.length, bytes.length]);
    expect(progress.every(([loaded], index) => index === 0 || loaded > progress[index - 1]![0])).toBe(true);
    expect(uploaded).toMatchObject({
      size: bytes.length,
      contentType: 'application/x-test',
      filename: 'report.bin',
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });

    const { blob } = await member.query(BlobDocument, { id: uploaded.id });
    expect(blob).toMatchObject({
      id: uploaded.id,
      size: bytes.length,
      url: uploaded.url,
      owner: { id: memberId },
    });
    const { blobs } = await member.query(BlobsDocument, { first: 10 });
    expect(blobs.edges.map((edge) => edge.node.id)).toContain(uploaded.id);
    const signed = await member.query(BlobSignedUrlDocument, { id: uploaded.id, expiresInSeconds: 60 });
    const download = await fetch(new URL(signed.blob!.signedUrl, portico.url));
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(bytes);
    expect(await member.mutate(DeleteBlobDocument, { id: uploaded.id })).toEqual({ deleteBlob: true });
    expect((await member.query(BlobDocument, { id: uploaded.id })).blob).toBeNull();
  });

  it('refuses uploads past blobs.maxBytes (413), without credentials (401) and with a stale fence (409)', async () => {
    const before = (await admin.query(BlobsDocument, { first: 100 })).blobs.edges.length;
    const tooLarge = await failure(
      member.uploadBlob(new Blob([new Uint8Array(MAX_BYTES + 1)]), { onProgress() {} }),
    );
    expect(tooLarge).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', status: 413 });
    expect((await admin.query(BlobsDocument, { first: 100 })).blobs.edges.length).toBe(before);

    const anonymous = await failure(createClient({ url: portico.url }).uploadBlob(new Blob(['x'])));
    expect(anonymous).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });

    const { acquireLease } = await member.mutate(AcquireLeaseDocument, { key: 'uploads', ttlSeconds: 30 });
    expect(acquireLease).toMatchObject({ key: 'uploads', mine: true });
    const fenced = await member.uploadBlob(new Blob(['fenced']), {
      contentType: 'text/plain',
      fence: { lease: 'uploads', token: acquireLease!.token },
    });
    expect(fenced.contentType).toBe('text/plain');
    await member.mutate(ReleaseLeaseDocument, { key: 'uploads', token: acquireLease!.token });
    const next = await admin.mutate(AcquireLeaseDocument, { key: 'uploads', ttlSeconds: 30 });
    const stale = await failure(
      member.uploadBlob(new Blob(['late']), { fence: { lease: 'uploads', token: acquireLease!.token } }),
    );
    expect(stale).toMatchObject({ code: 'FENCE_REJECTED', status: 409 });
    await admin.mutate(ReleaseLeaseDocument, { key: 'uploads', token: next.acquireLease!.token });
  });

  it('manages leases', async () => {
    const { acquireLease } = await member.mutate(AcquireLeaseDocument, { key: 'jobs/a', ttlSeconds: 30 });
    expect(
      (await admin.mutate(AcquireLeaseDocument, { key: 'jobs/a', ttlSeconds: 30 })).acquireLease,
    ).toBeNull();
    const { renewLease } = await member.mutate(RenewLeaseDocument, {
      key: 'jobs/a',
      token: acquireLease!.token,
      ttlSeconds: 60,
    });
    expect(renewLease.token).toBe(acquireLease!.token);
    expect((await admin.query(LeaseDocument, { key: 'jobs/a' })).lease).toMatchObject({ mine: false });
    const { leases } = await admin.query(LeasesDocument, { prefix: 'jobs/', first: 10 });
    expect(leases.edges.map((edge) => edge.node.key)).toEqual(['jobs/a']);
    expect(await member.mutate(ReleaseLeaseDocument, { key: 'jobs/a', token: acquireLease!.token })).toEqual({
      releaseLease: true,
    });
    expect((await member.query(LeaseDocument, { key: 'jobs/a' })).lease).toBeNull();
  });

  it('manages invites, API keys, device approvals and reads the audit log', async () => {
    const { createInvite } = await admin.mutate(CreateInviteDocument, {
      email: 'new@example.com',
      roles: ['member'],
    });
    expect(createInvite.url).toContain('/auth/redeem?token=');
    const { invites } = await admin.query(InvitesDocument, { first: 10 });
    expect(invites.edges.map((edge) => edge.node.email)).toContain('new@example.com');
    expect(await admin.mutate(RevokeInviteDocument, { id: createInvite.invite.id })).toEqual({
      revokeInvite: true,
    });

    const memberSession = await memberBrowser();
    const { scopes } = await memberSession.query(ScopesDocument);
    expect(scopes).toContainEqual({
      name: 'blobs:write',
      grants: 'upload and delete blobs',
      grantable: true,
    });
    expect(scopes).toContainEqual(expect.objectContaining({ name: 'admin', grantable: false }));
    const { createApiKey } = await memberSession.mutate(CreateApiKeyDocument, {
      name: 'short-lived',
      scopes: ['notes:read'],
    });
    // The member's program sees the keys, but without admin it neither makes nor revokes them.
    const { viewer } = await member.query(ApiKeysDocument);
    expect(viewer.apiKey?.name).toBe('member');
    expect(viewer.apiKeys.map((key) => key.name).sort()).toEqual(['member', 'short-lived']);
    expect((await failure(member.mutate(CreateApiKeyDocument, { name: 'outliving', scopes: [] }))).code).toBe(
      'FORBIDDEN',
    );
    expect((await failure(member.mutate(RevokeApiKeyDocument, { id: createApiKey.apiKey.id }))).code).toBe(
      'FORBIDDEN',
    );
    expect(await memberSession.mutate(RevokeApiKeyDocument, { id: createApiKey.apiKey.id })).toEqual({
      revokeApiKey: true,
    });

    // Devices are approved from a browser session, never with a key.
    const session = connect({
      url: portico.url,
      headers: { cookie: browser.cookieHeader },
    });
    const authorize = async () => {
      const response = await fetch(new URL('/oauth/device_authorization', portico.url), {
        method: 'POST',
        body: new URLSearchParams({ client_id: 'client-test' }),
      });
      return ((await response.json()) as { user_code: string }).user_code;
    };
    expect(await session.mutate(ApproveDeviceDocument, { userCode: await authorize() })).toEqual({
      approveDevice: true,
    });
    expect(await session.mutate(DenyDeviceDocument, { userCode: await authorize() })).toEqual({
      denyDevice: true,
    });
    expect((await failure(admin.mutate(ApproveDeviceDocument, { userCode: await authorize() }))).code).toBe(
      'FORBIDDEN',
    );

    const { auditEvents } = await admin.query(AuditEventsDocument, { kind: 'DEVICE_DENIED', first: 5 });
    expect(auditEvents.edges[0]?.node).toMatchObject({
      kind: 'DEVICE_DENIED',
      user: { email: 'admin@example.com' },
    });
  });

  it('has run every operation of its operation files', async () => {
    const names = await Promise.all(
      OPERATION_FILES.map(async (file) =>
        parse(
          await readFile(join(import.meta.dirname, '..', 'client', 'operations', `${file}.graphql`), 'utf8'),
        )
          .definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION)
          .map((definition) => definition.name!.value),
      ),
    );
    expect(names.flat().filter((name) => !executed.has(name))).toEqual([]);
  });
});
