import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineModule } from '../src/index.ts';
import { hasChromium, launchChromium } from './browser.ts';
import { ADMIN, backends, bootstrapAdmin, startGateway, type TestGateway } from './harness.ts';

/**
 * The typed client as a browser runs it: bundled by vite (so `#client-platform` resolves to
 * the browser file), loaded by Chromium from the gateway's origin, signed in by the session
 * cookie, uploading through XMLHttpRequest.
 */

/** The page puts the bundled module on `window.portico`, where the page functions below find it. */
const PAGE =
  '<!doctype html><title>client</title><script type="module">import * as portico from "/client-test/client.js"; window.portico = portico;</script>';
type Bundled = { portico: typeof import('../client/index.ts') };
const HTML = { 'content-type': 'text/html; charset=utf-8' };
const JS = { 'content-type': 'text/javascript; charset=utf-8' };

/** The client as one ES module, built for browsers. */
async function bundleClient(): Promise<string> {
  const output = await build({
    configFile: false,
    logLevel: 'warn',
    build: {
      lib: { entry: fileURLToPath(new URL('../client/index.ts', import.meta.url)), formats: ['es'] },
      write: false,
      minify: false,
    },
  });
  const [result] = Array.isArray(output) ? output : [output];
  if (!result || !('output' in result)) throw new Error('vite returned no bundle');
  const chunks = result.output.filter((file) => file.type === 'chunk');
  if (chunks.length !== 1)
    throw new Error(`expected one chunk, got ${chunks.map((chunk) => chunk.fileName)}`);
  return chunks[0]!.code;
}

describe.skipIf(!hasChromium())('the typed client in Chromium', () => {
  let browser: Browser;
  let bundle: string;

  beforeAll(async () => {
    bundle = await bundleClient();
    browser = await launchChromium();
  }, 120_000);
  afterAll(() => browser?.close());

  it('bundles no Node-only code', () => {
    expect(bundle).not.toMatch(/node:(fs|os|path|crypto|timers)/);
    expect(bundle).toContain('XMLHttpRequest');
  });

  describe.each(backends)('against a gateway on %s', (backend) => {
    let portico: TestGateway;
    let page: Page;

    beforeAll(async () => {
      // The gateway itself serves the page and the bundle, so the client runs on its origin.
      const testPage = defineModule({
        name: 'client-test',
        setup: () => ({
          routes: [
            { method: 'GET', path: '/client-test', handler: () => new Response(PAGE, { headers: HTML }) },
            {
              method: 'GET',
              path: '/client-test/client.js',
              handler: () => new Response(bundle, { headers: JS }),
            },
          ],
        }),
      });
      portico = await startGateway({
        backend,
        modules: [testPage],
        config: { collections: { notes: { read: 'authenticated', write: 'authenticated' } } },
      });
      await bootstrapAdmin(portico);
      page = await browser.newPage();
      // The page and the bundle come from the gateway's own origin, as the console does.
      await page.goto(`${portico.url}/client-test`);
      await page.waitForFunction(() => 'portico' in window);
    });
    afterAll(async () => {
      await page?.close();
      await portico?.close();
    });

    it('signs in with the cookie, queries, uploads with progress and follows changes over ws and SSE', async () => {
      const outcome = await page.evaluate(async ({ email, password }) => {
        const { createClient, LogInDocument, ViewerDocument, PutDocumentDocument, DocumentChangedDocument } =
          (window as unknown as Bundled).portico;
        const client = createClient({ url: '' });
        const anonymousUser = await client.query(ViewerDocument).then(
          ({ viewer }) => viewer.user,
          (error: { code: string }) => error.code,
        );
        await client.mutate(LogInDocument, { email, password });
        const { viewer } = await client.query(ViewerDocument);

        const progress: [number, number][] = [];
        const blob = await client.uploadBlob(new Blob([new Uint8Array(3 * 1024 * 1024)]), {
          filename: 'zeros.bin',
          onProgress: (loaded, total) => progress.push([loaded, total]),
        });

        // Over each transport the cookie is the credential (on the WebSocket's upgrade request).
        const changes: Record<string, unknown> = {};
        for (const transport of ['ws', 'sse'] as const) {
          const stream = client.subscribe(DocumentChangedDocument, { collection: 'notes' }, { transport });
          const first = stream.next();
          // The stream is live once a write comes through: write until one does.
          let change: unknown = null;
          for (let attempt = 0; change === null && attempt < 50; attempt++) {
            await client.mutate(PutDocumentDocument, {
              collection: 'notes',
              id: `${transport}${attempt}`,
              data: { attempt },
            });
            change = await Promise.race([
              first,
              new Promise((resolve) => setTimeout(() => resolve(null), 200)),
            ]);
          }
          await stream.return?.();
          changes[transport] = change;
        }
        await client.close();
        return { anonymousUser, email: viewer.user?.email, progress, blob, changes };
      }, ADMIN);

      expect(outcome.anonymousUser).toBeNull();
      expect(outcome.email).toBe(ADMIN.email);
      expect(outcome.blob).toMatchObject({ size: 3 * 1024 * 1024, filename: 'zeros.bin' });
      expect(outcome.progress.at(-1)).toEqual([3 * 1024 * 1024, 3 * 1024 * 1024]);
      const created = { done: false, value: { documentChanged: { kind: 'CREATED' } } };
      expect(outcome.changes).toMatchObject({ ws: created, sse: created });
    });

    it('rejects with the contract code, and refuses an upload without the session', async () => {
      const codes = await page.evaluate(async () => {
        const { createClient, UsersDocument, LogOutDocument, PorticoClientError } = (
          window as unknown as Bundled
        ).portico;
        const client = createClient({ url: '' });
        const codeOf = (error: unknown) => (error instanceof PorticoClientError ? error.code : String(error));
        await client.mutate(LogOutDocument);
        return {
          users: await client.query(UsersDocument).then(() => 'ok', codeOf),
          upload: await client.uploadBlob(new Blob(['x'])).then(() => 'ok', codeOf),
        };
      });
      expect(codes).toEqual({ users: 'UNAUTHENTICATED', upload: 'UNAUTHENTICATED' });
    });
  });
});
