import { once } from 'node:events';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedeemTokenDocument, RequestLoginLinkDocument, SignUpDocument } from '../../client/index.ts';
import {
  ADMIN,
  backends,
  bootstrapAdmin,
  codeOf,
  startGateway,
  type TestGateway,
} from '../../test/harness.ts';

/** The tokens of the login links mailed (printed by the console transport) to `to`. */
const mailedTokens = (portico: TestGateway, to: string) =>
  portico.logs
    .filter((line) => (line.mail as { to?: string } | undefined)?.to === to)
    .map((line) => line.msg.match(/\/auth\/redeem\?token=([\w-]{43})/)?.[1])
    .filter((token): token is string => Boolean(token));

describe.each(backends)('magic links on %s', (backend) => {
  let portico: TestGateway;
  beforeAll(async () => {
    portico = await startGateway({
      backend,
      config: { methods: ['password', 'magic-link'], signup: 'invite' },
    });
    await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('mails a single-use link that signs in, printed in full by the console transport', async () => {
    const result = await portico.client().gql(RequestLoginLinkDocument, { email: 'ADMIN@example.com' });
    expect(result.data?.requestLoginLink).toBe(true);
    await expect.poll(() => mailedTokens(portico, ADMIN.email).length).toBe(1);
    const token = mailedTokens(portico, ADMIN.email)[0]!;
    const mail = portico.logs.find((line) => line.mail !== undefined)!;
    expect(mail.msg).toContain(`http://portico.test/auth/redeem?token=${token}`);

    const client = portico.client();
    const redeemed = await client.gql(RedeemTokenDocument, { token });
    expect(redeemed.data?.redeemToken).toMatchObject({
      user: { email: ADMIN.email },
      session: { method: 'magic-link' },
    });
    expect(codeOf(await portico.client().gql(RedeemTokenDocument, { token }))).toBe('INVALID_TOKEN');
  });

  it('answers unknown addresses exactly like known ones, and mails nothing', async () => {
    const known = await portico.client().gql(RequestLoginLinkDocument, { email: ADMIN.email });
    const unknown = await portico.client().gql(RequestLoginLinkDocument, { email: 'nobody@example.com' });
    expect(unknown.status).toBe(known.status);
    expect(unknown.data).toEqual(known.data);
    expect(unknown.errors).toEqual(known.errors);
    await expect.poll(() => mailedTokens(portico, ADMIN.email).length).toBe(2);
    expect(mailedTokens(portico, 'nobody@example.com')).toEqual([]);
    expect(codeOf(await portico.client().gql(RequestLoginLinkDocument, { email: 'not an address' }))).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('binds the token to login: it is no invite, and it expires', async () => {
    await portico.client().gql(RequestLoginLinkDocument, { email: ADMIN.email });
    await expect.poll(() => mailedTokens(portico, ADMIN.email).length).toBe(3);
    const token = mailedTokens(portico, ADMIN.email).at(-1)!;
    const asInvite = await portico.client().gql(SignUpDocument, {
      input: { email: 'x@example.com', password: 'a long enough passphrase', inviteToken: token },
    });
    expect(codeOf(asInvite)).toBe('INVALID_TOKEN');
    const { Token } = (await import('../sessions/index.ts')).default.api;
    const { sha256 } = await import('../../src/index.ts');
    await portico.gateway.runtime.db.system.em
      .fork()
      .nativeUpdate(Token, { hash: sha256(token) }, { expiresAt: new Date(Date.now() - 1000) });
    expect(codeOf(await portico.client().gql(RedeemTokenDocument, { token }))).toBe('INVALID_TOKEN');
  });
});

describe('magic links', () => {
  it('are refused when the method is not enabled', async () => {
    const portico = await startGateway({ config: { methods: ['password'] }, listen: false });
    try {
      expect(codeOf(await portico.client().gql(RequestLoginLinkDocument, { email: ADMIN.email }))).toBe(
        'FORBIDDEN',
      );
    } finally {
      await portico.close();
    }
  });

  it('go out over SMTP to a real server', async () => {
    const received: string[] = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, done) {
        let text = '';
        stream.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        stream.on('end', () => {
          received.push(text);
          done();
        });
      },
    });
    smtp.listen(0, '127.0.0.1');
    await once(smtp.server, 'listening');
    const { port } = smtp.server.address() as { port: number };
    const portico = await startGateway({
      config: {
        methods: ['magic-link'],
        mail: { transport: `smtp://127.0.0.1:${port}`, from: 'Portico <hi@portico.test>' },
      },
    });
    try {
      await bootstrapAdmin(portico);
      await portico.client().gql(RequestLoginLinkDocument, { email: ADMIN.email });
      await expect.poll(() => received.length, { timeout: 10_000 }).toBe(1);
      // Quoted-printable: soft line breaks and =XX escapes.
      const message = received[0]!
        .replace(/=\r?\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
      expect(message).toMatch(/^To: admin@example\.com/im);
      expect(message).toMatch(/^From: Portico <hi@portico\.test>/im);
      const token = message.match(/\/auth\/redeem\?token=([\w-]{43})/)?.[1];
      expect(token).toBeDefined();
      const redeemed = await portico.client().gql(RedeemTokenDocument, { token: token! });
      expect(redeemed.errors).toBeUndefined();
    } finally {
      await portico.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }
  });
});
