import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runClientCli } from '../client/cli.ts';
import { credentialsPath } from '../client/credentials.ts';
import { runDeviceFlow } from '../client/device-flow.ts';
import {
  ApiKeysDocument,
  ApproveDeviceDocument,
  createClient,
  DenyDeviceDocument,
  type DeviceCodePrompt,
  PorticoClientError,
  RevokeApiKeyDocument,
  SessionRevokedDocument,
  UsersDocument,
  ViewerDocument,
} from '../client/index.ts';
import { backends, startGatewayWithAdmin, type TestClient, type TestGateway } from './harness.ts';
import { runPortico } from './run-cli.ts';

const userCodeIn = (text: string) => /shows the code ([A-Z]{4}-[A-Z]{4})/.exec(text)?.[1];

interface Saved {
  gateways: Record<string, { apiKey: string; requestedScope?: string; grantedScope: string }>;
}

describe.each(backends)('portico login and the saved key on %s', (backend) => {
  let gateway: TestGateway;
  let browser: TestClient;
  let configHome: string;
  let file: string;
  const readSaved = async () => JSON.parse(await readFile(file, 'utf8')) as Saved;
  const savedKey = async () => (await readSaved()).gateways[new URL(gateway.url).origin]?.apiKey;

  /** The person at the browser answers a device code. */
  const answer = async (userCode: string, approve = true) => {
    const result = approve
      ? await browser.gql(ApproveDeviceDocument, { userCode })
      : await browser.gql(DenyDeviceDocument, { userCode });
    expect(result.errors).toBeUndefined();
  };
  /** The real `portico` binary with this suite's configuration folder; `onStdout` as runPortico's. */
  const portico = (args: string[], onStdout?: (stdout: string) => void) =>
    runPortico(args, configHome, { XDG_CONFIG_HOME: configHome }, { onStdout });
  const login = (args: string[] = [], approve = true) => {
    let answered = false;
    return portico(['login', gateway.url, ...args], (stdout) => {
      const code = userCodeIn(stdout);
      if (code && !answered) {
        answered = true;
        void answer(code, approve);
      }
    });
  };
  /** Revokes a key as its user would in the browser; one revoked already stays so. */
  const revoke = async (key: string) => {
    const { viewer } = await createClient({ url: gateway.url, apiKey: key }).query(ApiKeysDocument);
    if (!viewer.apiKey) return;
    await createClient({ url: gateway.url, headers: { cookie: browser.cookieHeader } }).mutate(
      RevokeApiKeyDocument,
      { id: viewer.apiKey.id },
    );
  };

  beforeAll(async () => {
    configHome = await mkdtemp(join(tmpdir(), 'portico-login-'));
    // The clients of this process read the same folder the spawned CLI writes.
    process.env.XDG_CONFIG_HOME = configHome;
    file = credentialsPath();
    ({ portico: gateway, admin: browser } = await startGatewayWithAdmin({
      backend,
      config: { device: { intervalSeconds: 1 } },
    }));
  });
  afterAll(async () => {
    await gateway?.close();
    await rm(configHome, { recursive: true, force: true });
  });

  it('logs in with the device flow and saves a key, 0600 in a 0700 folder, that a client without apiKey uses', async () => {
    const run = await login(['--scope', 'admin']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Open ${gateway.url}/device?user_code=`);
    expect(run.stdout).toContain(`Signed in to ${gateway.url} as admin@example.com`);
    expect(run.stdout).toContain('Scopes: admin.');

    expect(file).toBe(join(configHome, 'portico', 'credentials.json'));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
    const saved = (await readSaved()).gateways[gateway.url];
    expect(saved).toMatchObject({ requestedScope: 'admin', grantedScope: 'admin' });
    expect(saved?.apiKey).toMatch(/^pk_/);

    const client = createClient({ url: gateway.url });
    const { viewer } = await client.query(ViewerDocument);
    expect(viewer.user?.email).toBe('admin@example.com');
    expect(viewer.scopes).toEqual(['admin']);
    expect((await client.query(UsersDocument)).users.edges).toHaveLength(1);
  });

  it('runs the device flow again, once for concurrent calls, when the saved key is refused', async () => {
    const before = (await savedKey())!;
    await revoke(before);
    const prompts: DeviceCodePrompt[] = [];
    const client = createClient({
      url: gateway.url,
      onDeviceCode: (prompt) => {
        prompts.push(prompt);
        void answer(prompt.userCode);
      },
    });
    const [first, second] = await Promise.all([client.query(UsersDocument), client.query(UsersDocument)]);
    expect(first.users.edges).toHaveLength(1);
    expect(second.users.edges).toHaveLength(1);
    expect(prompts).toHaveLength(1);
    expect(prompts[0]!.verificationUriComplete).toBe(
      `${gateway.url}/device?user_code=${prompts[0]!.userCode}`,
    );
    // The new key replaced the old one and kept the scopes asked at the first login.
    const after = (await readSaved()).gateways[gateway.url]!;
    expect(after.apiKey).not.toBe(before);
    expect(after).toMatchObject({ requestedScope: 'admin', grantedScope: 'admin' });
    expect((await createClient({ url: gateway.url }).query(ViewerDocument)).viewer.scopes).toEqual(['admin']);
  });

  it.each(['ws', 'sse'] as const)(
    'reopens a %s subscription refused for its saved key with the new key',
    async (transport) => {
      const refused = (await savedKey())!;
      await revoke(refused);
      let prompted = 0;
      const client = createClient({
        url: gateway.url,
        onDeviceCode: ({ userCode }) => {
          prompted++;
          void answer(userCode);
        },
      });
      // Refused at once (a WebSocket closed with 4403, an SSE error), then reopened after the login.
      const revocations = client.subscribe(SessionRevokedDocument, undefined, { transport });
      const next = revocations.next();
      let key = refused;
      for (let attempt = 0; key === refused && attempt < 100; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        key = (await savedKey())!;
      }
      expect(key).not.toBe(refused);
      // The reopened stream is the new key's: it ends when that key is revoked.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await revoke(key);
      expect(await next).toMatchObject({ done: false, value: { sessionRevoked: { reason: 'REVOKED' } } });
      expect(await revocations.next()).toEqual({ value: undefined, done: true });
      expect(prompted).toBe(1);
      await client.close();
    },
  );

  it('fails the call when the new login is denied, and keeps the refused key', async () => {
    const refused = (await savedKey())!;
    await revoke(refused);
    const client = createClient({
      url: gateway.url,
      onDeviceCode: ({ userCode }) => void answer(userCode, false),
    });
    const error = await client.query(UsersDocument).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PorticoClientError);
    expect((error as PorticoClientError).code).toBe('DEVICE_ACCESS_DENIED');
    expect(await savedKey()).toBe(refused);
  });

  it('exits 3 when the browser denies, saving nothing', async () => {
    const before = await readFile(file, 'utf8');
    const run = await login([], false);
    expect(run.code).toBe(EXIT.denied);
    expect(run.stderr).toContain('denied');
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('logs out: the key is revoked on the gateway and forgotten here', async () => {
    const login2 = await login(['--scope', 'admin']);
    expect(login2.code).toBe(0);
    const key = (await savedKey())!;
    const run = await portico(['logout', gateway.url]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('revoked and forgotten');
    expect(await savedKey()).toBeUndefined();
    const { viewer } = await createClient({ url: gateway.url, apiKey: key }).query(ViewerDocument);
    expect(viewer.user).toBeNull();
    const again = await portico(['logout', gateway.url]);
    expect(again.stdout).toContain('No key is saved');
  });

  it('refuses a bad command line with exit code 2', async () => {
    const run = await portico(['login', 'ftp://example.com']);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toContain('is not an http(s) URL');
  });
});

/**
 * A gateway's OAuth endpoints played by a script, for timings the real one would take minutes to
 * show; `asked` collects the `scope` field of each device authorization request (null: none sent).
 */
function scriptedGateway(
  tokenAnswers: Record<string, unknown>[],
  interval: number,
  metadata: Record<string, unknown> = {},
) {
  const polls: number[] = [];
  const asked: (string | null)[] = [];
  const json = (body: unknown, status = 200) => Response.json(body, { status });
  const fetcher: typeof fetch = async (input, init) => {
    const { pathname } = new URL(String(input));
    if (pathname === '/.well-known/oauth-authorization-server') {
      return json({
        device_authorization_endpoint: 'http://gateway.test/oauth/device_authorization',
        token_endpoint: 'http://gateway.test/oauth/token',
        ...metadata,
      });
    }
    if (pathname === '/oauth/device_authorization') {
      asked.push(new URLSearchParams(String(init?.body)).get('scope'));
      return json({
        device_code: 'd'.repeat(43),
        user_code: 'BCDF-GHJK',
        verification_uri: 'http://gateway.test/device',
        expires_in: 600,
        interval,
      });
    }
    polls.push(Date.now());
    const answer = tokenAnswers.shift()!;
    return json(answer, 'access_token' in answer ? 200 : 400);
  };
  return { fetcher, polls, asked };
}

describe('the device flow', () => {
  it('waits five seconds more after slow_down', { timeout: 15_000 }, async () => {
    const { fetcher, polls } = scriptedGateway(
      [{ error: 'slow_down' }, { access_token: 'pk_x_y', token_type: 'Bearer', scope: '' }],
      0,
    );
    const prompts: DeviceCodePrompt[] = [];
    const grant = await runDeviceFlow('http://gateway.test', {
      fetch: fetcher,
      onDeviceCode: (p) => prompts.push(p),
    });
    expect(grant).toEqual({ accessToken: 'pk_x_y', scope: '' });
    expect(prompts).toEqual([
      {
        userCode: 'BCDF-GHJK',
        verificationUri: 'http://gateway.test/device',
        verificationUriComplete: 'http://gateway.test/device',
      },
    ]);
    expect(polls[1]! - polls[0]!).toBeGreaterThanOrEqual(4_900);
  });

  it('asks for every scope of scopes_supported but admin unless told which, and exactly those when told', async () => {
    const granted = { access_token: 'pk_x_y', token_type: 'Bearer', scope: 'notes:read' };
    const { fetcher, asked } = scriptedGateway([granted, granted, granted], 0, {
      scopes_supported: ['admin', 'notes:read', 'notes:write', 'leases'],
    });
    const run = (scope?: string) =>
      runDeviceFlow('http://gateway.test', { fetch: fetcher, onDeviceCode: () => {}, scope });
    expect(await run()).toEqual({ accessToken: 'pk_x_y', scope: 'notes:read' });
    await run('admin notes:read');
    await run('');
    expect(asked).toEqual(['notes:read notes:write leases', 'admin notes:read', null]);

    // A gateway that lists no scopes is asked for none.
    const bare = scriptedGateway([granted], 0);
    await runDeviceFlow('http://gateway.test', { fetch: bare.fetcher, onDeviceCode: () => {} });
    expect(bare.asked).toEqual([null]);
  });

  it('makes portico login exit 4 when the code expires', async () => {
    const { fetcher } = scriptedGateway([{ error: 'authorization_pending' }, { error: 'expired_token' }], 0);
    const out: string[] = [];
    const err: string[] = [];
    const home = await mkdtemp(join(tmpdir(), 'portico-expired-'));
    const code = await runClientCli(['login', 'http://gateway.test'], {
      fetch: fetcher,
      env: { XDG_CONFIG_HOME: home },
      out: (text) => out.push(text),
      err: (text) => err.push(text),
    });
    expect(code).toBe(EXIT.expired);
    expect(out.join('\n')).toContain('shows the code BCDF-GHJK');
    expect(err.join('\n')).toContain('The code expired before it was approved');
    await expect(stat(join(home, 'portico', 'credentials.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(home, { recursive: true, force: true });
  });
});
