import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthDocument, LogInWithDocument } from '../../client/index.ts';
import { backends, bootstrapAdmin, codeOf, startGateway, type TestGateway } from '../../test/harness.ts';

/** A stand-in for the app's own login service. */
function remoteService(): Server {
  let renamed = false;
  return createServer(async (request, response) => {
    let body = '';
    for await (const chunk of request) body += chunk;
    const { username, password } = JSON.parse(body) as { username?: string; password?: string };
    const reply = (status: number, payload: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(typeof payload === 'string' ? payload : JSON.stringify(payload));
    };
    if (username === 'alice' && password === 'wonderland') {
      reply(200, { id: 'r-1', email: 'alice@remote.test', name: renamed ? 'Alice Liddell' : 'Alice' });
      renamed = true;
    } else if (username === 'numeric') reply(200, { id: 42, email: 'numeric@remote.test' });
    else if (username === 'garbage') reply(200, 'not json at all');
    else if (username === 'partial') reply(200, { id: 'r-2' });
    else if (username === 'slow')
      setTimeout(() => reply(200, { id: 'r-3', email: 'slow@remote.test' }), 3000);
    else reply(401, { error: 'no' });
  });
}

describe.each(backends)('remote login on %s', (backend) => {
  let portico: TestGateway;
  let remote: Server;

  beforeAll(async () => {
    remote = remoteService().listen(0, '127.0.0.1');
    await once(remote, 'listening');
    const { port } = remote.address() as { port: number };
    portico = await startGateway({
      backend,
      config: {
        methods: ['password', 'remote'],
        remoteLogin: { endpoint: `http://127.0.0.1:${port}/login`, timeoutMs: 500 },
        roles: { member: ['notes:read'] },
        defaultRoles: ['member'],
      },
    });
    await bootstrapAdmin(portico);
  });
  afterAll(async () => {
    await portico?.close();
    remote?.closeAllConnections();
    remote?.close();
  });

  const logInWith = (credentials: Record<string, unknown>, method = 'remote') =>
    portico.client().gql(LogInWithDocument, { method, credentials });

  it('lists the enabled methods', async () => {
    const auth = await portico.client().gql(AuthDocument);
    expect(auth.data?.auth.methods).toEqual(['password', 'remote']);
  });

  it('creates the user on first login, then finds it by the remote id and follows its changes', async () => {
    const first = await logInWith({ username: 'alice', password: 'wonderland' });
    expect(first.errors).toBeUndefined();
    expect(first.data?.logInWith).toMatchObject({
      user: { email: 'alice@remote.test', name: 'Alice', roles: ['member'] },
      session: { method: 'remote' },
    });
    const second = await logInWith({ username: 'alice', password: 'wonderland' });
    expect(second.data?.logInWith.user.id).toBe(first.data?.logInWith.user.id);
    expect(second.data?.logInWith.user.name).toBe('Alice Liddell');
    const numeric = await logInWith({ username: 'numeric' });
    expect(numeric.data?.logInWith.user.email).toBe('numeric@remote.test');
  });

  it('answers INVALID_CREDENTIALS for refusals and malformed answers', async () => {
    for (const credentials of [
      { username: 'alice', password: 'nope' },
      { username: 'garbage' },
      { username: 'partial' },
    ]) {
      const result = await logInWith(credentials);
      expect(codeOf(result)).toBe('INVALID_CREDENTIALS');
      expect(result.status).toBe(200);
    }
  });

  it('gives a clear error within its timeout when the endpoint does not answer', async () => {
    const started = Date.now();
    const slow = await logInWith({ username: 'slow' });
    expect(Date.now() - started).toBeLessThan(2500);
    expect(codeOf(slow)).toBe('SERVICE_UNAVAILABLE');
    expect(slow.errors?.[0]?.message).toMatch(/remote login service did not answer/);
  });

  it('dispatches password through logInWith, and refuses unknown or disabled methods', async () => {
    const password = await logInWith(
      { email: 'admin@example.com', password: 'correct horse battery staple' },
      'password',
    );
    expect(password.data?.logInWith.session.method).toBe('password');
    expect(codeOf(await logInWith({}, 'carrier-pigeon'))).toBe('FORBIDDEN');
    expect(codeOf(await logInWith({}, 'magic-link'))).toBe('FORBIDDEN');
    expect(codeOf(await logInWith({ email: 'admin@example.com' }, 'password'))).toBe('INVALID_CREDENTIALS');
  });
});

describe('remote login when the endpoint is down', () => {
  it('is a clear error, not a 500 or a hang', async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as { port: number };
    probe.close();
    const portico = await startGateway({
      config: { methods: ['remote'], remoteLogin: { endpoint: `http://127.0.0.1:${port}/login` } },
    });
    try {
      const result = await portico
        .client()
        .gql(LogInWithDocument, { method: 'remote', credentials: { username: 'x' } });
      expect(codeOf(result)).toBe('SERVICE_UNAVAILABLE');
      expect(result.status).toBe(503);
    } finally {
      await portico.close();
    }
  });
});
