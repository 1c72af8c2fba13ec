import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthDocument, LogInWithDocument } from '../client/index.ts';
import { ADMIN, bootstrapAdmin, codeOf, startGateway, type TestGateway } from './harness.ts';

const root = join(import.meta.dirname, '..');

/** docs/modules.md's `portico.config.ts` login-method example, its imports pointed at this checkout. */
async function loginMethodExample(): Promise<string> {
  const page = await readFile(join(root, 'docs', 'modules.md'), 'utf8');
  const block = page.match(
    /```ts\n(\/\/ portico\.config\.ts: sign in with an email and the PIN[\s\S]*?)```/,
  )?.[1];
  if (!block) throw new Error('docs/modules.md lost its login-method example');
  return block
    .replace("from 'portico'", `from ${JSON.stringify(join(root, 'src', 'index.ts'))}`)
    .replaceAll(
      /from '\.\/modules\/([a-z-]+)\/index\.ts'/g,
      (_import, name: string) => `from ${JSON.stringify(join(root, 'modules', name, 'index.ts'))}`,
    );
}

describe('a login method written in portico.config.ts (the example of docs/modules.md)', () => {
  let portico: TestGateway;
  beforeAll(async () => {
    const example = await loginMethodExample();
    portico = await startGateway({ configFile: { name: 'portico.config.ts', content: example } });
    await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('is enabled and signs in with the right PIN only', async () => {
    const auth = await portico.client().gql(AuthDocument);
    expect(auth.data?.auth.methods).toEqual(['password', 'pin']);
    const pin = String(new Date().getUTCDate()).padStart(4, '0');
    const logIn = (credentials: Record<string, unknown>) =>
      portico.client().gql(LogInWithDocument, { method: 'pin', credentials });
    const ok = await logIn({ email: ADMIN.email, pin });
    expect(ok.data?.logInWith).toMatchObject({ user: { email: ADMIN.email }, session: { method: 'pin' } });
    const wrong = await logIn({ email: ADMIN.email, pin: 'nope' });
    expect(codeOf(wrong)).toBe('INVALID_CREDENTIALS');
  });
});
