import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kind, parse } from 'graphql';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AcquireLeaseDocument,
  DocumentsDocument,
  GatewayOverviewDocument,
  PatchDocumentDocument,
  PutDocumentDocument,
  ViewerDocument,
} from '../../client/index.ts';
import { hasChromium, launchChromium } from '../../test/browser.ts';
import {
  ADMIN,
  backends,
  startGateway,
  startGatewayWithAdmin,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

/**
 * The admin console end to end: a real gateway, the app as `npm ci` builds it, and Debian's
 * Chromium driven by playwright-core. Every run saves a screenshot of each screen in
 * test-results/screenshots/; `PORTICO_SCREENSHOTS=1` writes them to docs/screenshots/ instead,
 * where docs/console.md shows them.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCREENSHOTS = `${ROOT}${process.env.PORTICO_SCREENSHOTS === '1' ? 'docs' : 'test-results'}/screenshots`;
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const BOB = { email: 'bob@example.com', name: 'Bob Builder', password: 'another long passphrase' };
const CONFIG = {
  signup: 'invite',
  roles: { member: ['notes:read', 'blobs:write'] },
  defaultRoles: ['member'],
  collections: {
    notes: {
      indexes: { byTag: ['tag', 'rank'] },
      schema: {
        type: 'object',
        properties: { title: { type: 'string' }, tag: { type: 'string' }, rank: { type: 'integer' } },
        required: ['title'],
      },
    },
  },
};
/** A 2×2 PNG, so the blob list has an image to preview. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR42mM4oaGhUXGHAUIBACLSBSnxV7tTAAAAAElFTkSuQmCC',
  'base64',
);

/** Fails the test on any error the page logs (a CSP violation included) or throws. */
function watchErrors(page: Page, errors: string[]) {
  page.on('pageerror', (error) => errors.push(`${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`${page.url()}: ${message.text()}`);
  });
}

/**
 * Resolves when something on the gateway subscribes to a pub/sub topic: the screen that opened
 * a subscription is then listening, and an event it must show can be caused.
 */
function subscribedTo(portico: TestGateway, topic: 'session.created') {
  const { pubsub } = portico.gateway.runtime;
  const subscribe = pubsub.subscribe;
  return new Promise<void>((resolve) => {
    pubsub.subscribe = ((name: typeof topic) => {
      if (name === topic) {
        pubsub.subscribe = subscribe;
        resolve();
      }
      return subscribe.call(pubsub, name);
    }) as typeof subscribe;
  });
}

/** Notes the name of every GraphQL operation the page sends, over HTTP (queries, SSE) or the WebSocket. */
function noteOperations(page: Page, names: Set<string>) {
  const note = (name: unknown) => typeof name === 'string' && names.add(name);
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/graphql') {
      note(request.postDataJSON()?.operationName);
    }
  });
  page.on('websocket', (socket) =>
    socket.on('framesent', ({ payload }) => {
      const message = JSON.parse(String(payload)) as { type?: string; payload?: { operationName?: string } };
      if (message.type === 'subscribe') note(message.payload?.operationName);
    }),
  );
}

/** How many samples the Overview's charts hold. */
const samplesCharted = async (page: Page) =>
  Number(await page.locator('[data-chart="traffic"]').getAttribute('data-points'));

/**
 * What does not fit the window: the page wider than it, an element whose box sticks out of
 * its panel (a `.card`, a `.tile`, a `.table-wrap`, a blob's card) or of `main`, left or right (1 px of
 * rounding allowed), or text wider than the box it is in (a word that cannot wrap). What an
 * element scrolls or clips (a wide table in its scrolling wrap on a laptop) is not a spill.
 * Each is described so that a failure names it.
 */
function spills(page: Page) {
  return page.evaluate(() => {
    const tag = (element: Element) =>
      `<${element.localName}${element.id ? `#${element.id}` : ''}${[...element.classList].map((name) => `.${name}`).join('')}>`;
    const describe = (element: Element) => {
      const text = (element.textContent ?? '').trim().replace(/\s+/g, ' ').slice(0, 40);
      return `${tag(element)}${text ? ` “${text}”` : ''}`;
    };
    /** True when something between `element` and `panel` scrolls or clips it sideways. */
    const contained = (element: Element, panel: Element) => {
      for (let parent = element.parentElement; parent && parent !== panel; parent = parent.parentElement) {
        if (getComputedStyle(parent).overflowX !== 'visible') return true;
      }
      return false;
    };
    const found: string[] = [];
    const { scrollWidth } = document.documentElement;
    if (scrollWidth > innerWidth)
      found.push(`the page is ${scrollWidth} px wide in a ${innerWidth} px window`);
    const PANELS = '.card, .tile, .table-wrap, .blob';
    // Each element is held to its nearest panel (or main), and only the outermost of a spilling
    // subtree is named.
    const spilled = new Set<Element>();
    for (const panel of document.querySelectorAll(`main, main :is(${PANELS})`)) {
      const edges = panel.getBoundingClientRect();
      for (const element of panel.querySelectorAll('*')) {
        if (element.parentElement?.closest(`main, ${PANELS}`) !== panel) continue;
        const box = element.getBoundingClientRect();
        if (box.width === 0 || contained(element, panel)) continue;
        if (box.right > edges.right + 1 || box.left < edges.left - 1) {
          spilled.add(element);
          if (element.parentElement && spilled.has(element.parentElement)) continue;
          found.push(
            `${describe(element)} spans ${Math.round(box.left)}–${Math.round(box.right)} px, out of ${tag(panel)} at ${Math.round(edges.left)}–${Math.round(edges.right)} px`,
          );
        }
      }
    }
    // Text is no element: a word too long for its box shows as the box's scroll width.
    for (const element of document.querySelectorAll('main *')) {
      if (element.children.length > 0 || element.clientWidth === 0) continue;
      if (getComputedStyle(element).overflowX !== 'visible' || contained(element, document.body)) continue;
      if (element.scrollWidth > element.clientWidth + 1) {
        found.push(
          `the text of ${describe(element)} is ${element.scrollWidth} px wide in ${element.clientWidth} px`,
        );
      }
    }
    return found;
  });
}

async function screenshot(page: Page, name: string) {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}

describe.skipIf(!hasChromium())('the admin console in Chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    // What `npm ci` runs (the prepare script): the test sees the app as its sources are now.
    await promisify(execFile)(
      process.execPath,
      [`${ROOT}node_modules/vite/bin/vite.js`, 'build', '--config', 'modules/console/vite.config.ts'],
      { cwd: ROOT },
    );
    browser = await launchChromium();
  }, 120_000);
  afterAll(() => browser?.close());

  // A new installation, as its first admin meets it: the start page, the manual, the login page,
  // then the bootstrap link leading into the console. Every page fits a laptop and a phone.
  describe.each(backends)('the first hour on %s', (backend) => {
    let portico: TestGateway;
    let context: BrowserContext;
    afterAll(async () => {
      await context?.close();
      await portico?.close();
    });

    it('leads from the start page and the bootstrap link into the console, with no dead end', async () => {
      portico = await startGateway({ backend, config: CONFIG });
      context = await browser.newContext({ viewport: LAPTOP });
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      const errors: string[] = [];
      watchErrors(page, errors);
      const shoot = (name: string) => (backend === 'sqlite' ? screenshot(page, name) : undefined);
      /** What spills on the page as it is, at a laptop's width and then a phone's. */
      const fits = async (name: string) => {
        const found: string[] = [];
        for (const size of [LAPTOP, PHONE]) {
          await page.setViewportSize(size);
          found.push(...(await spills(page)).map((spill) => `${name} at ${size.width} px: ${spill}`));
        }
        await page.setViewportSize(LAPTOP);
        return found;
      };
      const found: string[] = [];

      await page.goto(`${portico.url}/`);
      await page.getByRole('heading', { level: 1, name: 'Portico' }).waitFor();
      const ways = page.getByRole('navigation', { name: 'Where to go' });
      for (const name of ['Admin console', 'GraphiQL', 'Manual', '/health', '/ready']) {
        await ways.getByRole('link', { name, exact: true }).waitFor();
      }
      await page.getByText('Ready now').waitFor();
      found.push(...(await fits('the start page')));
      await shoot('start');

      await ways.getByRole('link', { name: 'Manual', exact: true }).click();
      await page.waitForURL(`${portico.url}/docs`);
      await page.getByRole('link', { name: 'Collections', exact: true }).first().click();
      await page.waitForURL(`${portico.url}/docs/collections`);
      await page.getByRole('heading', { level: 1 }).waitFor();
      found.push(...(await fits('the manual')));
      await shoot('manual');

      // Anonymous, the console leads to the login page, which names each way in.
      await page.goto(`${portico.url}/admin`);
      await page.waitForURL(`${portico.url}/login?next=/admin`);
      await page.getByRole('heading', { name: 'With your password' }).waitFor();
      await page.getByRole('heading', { name: 'With a link by email' }).waitFor();
      await page.getByText('or', { exact: true }).waitFor();
      found.push(...(await fits('the login page')));
      await shoot('login');

      // The link the first start printed: the new admin ends up in the console, not on /login.
      await page.goto(`${portico.url}/auth/redeem?token=${encodeURIComponent(portico.bootstrapToken())}`);
      await page.getByRole('heading', { level: 1, name: 'Create the first admin' }).waitFor();
      found.push(...(await fits('the bootstrap form')));
      await page.getByLabel('Email').fill(ADMIN.email);
      await page.getByLabel('Name').fill('Ada Admin');
      await page.getByLabel(/^Password/).fill('password');
      await page.getByRole('button', { name: 'Continue' }).click();
      // A refused password keeps what was typed, the password aside.
      await page.getByRole('alert').waitFor();
      expect(await page.getByLabel('Email').inputValue()).toBe(ADMIN.email);
      expect(await page.getByLabel('Name').inputValue()).toBe('Ada Admin');
      expect(await page.getByLabel(/^Password/).inputValue()).toBe('');
      await page.getByLabel(/^Password/).fill(ADMIN.password);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL(`${portico.url}/admin/overview`);
      await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      // Signed in, the start page sends an admin on to the console.
      await page.goto(`${portico.url}/`);
      await page.waitForURL(`${portico.url}/admin/overview`);
      await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();

      expect(found).toEqual([]);
      // The refused password's page is a 400, which Chromium logs; nothing else went wrong.
      const refused = /\/auth\/redeem: Failed to load resource: the server responded with a status of 400/;
      expect(errors.filter((error) => !refused.test(error))).toEqual([]);
      expect(errors.length).toBe(1);
    }, 60_000);
  });

  describe.each(backends)('on %s', (backend) => {
    let portico: TestGateway;
    /** The first gateway, once the Overview's test has stopped it and started another on its port and database. */
    let replaced: TestGateway | undefined;
    let api: TestClient;
    let adminContext: BrowserContext;
    let admin: Page;
    const errors: string[] = [];
    const executed = new Set<string>();
    // Screenshots once: the screens are the same on both databases.
    const shot = new Set<string>();
    const shoot = (page: Page, name: string) => {
      shot.add(name);
      return backend === 'sqlite' ? screenshot(page, name) : undefined;
    };

    beforeAll(async () => {
      ({ portico, admin: api } = await startGatewayWithAdmin({ backend, config: CONFIG }));
      adminContext = await browser.newContext({ viewport: LAPTOP, acceptDownloads: true });
      admin = await adminContext.newPage();
      admin.setDefaultTimeout(10_000);
      watchErrors(admin, errors);
      noteOperations(admin, executed);
    }, 60_000);
    beforeEach(() => {
      errors.length = 0;
    });
    afterAll(async () => {
      await adminContext?.close();
      await portico?.close();
      // Last: it drops the database.
      await replaced?.close();
    });

    it('signs the admin in through /login and lands on the Overview', async () => {
      await admin.goto(`${portico.url}/admin`);
      await expect.poll(() => admin.url()).toBe(`${portico.url}/login?next=/admin`);
      const form = admin.getByRole('form', { name: 'Sign in with a password' });
      await form.getByLabel('Email').fill(ADMIN.email);
      await form.getByLabel('Password').fill(ADMIN.password);
      await form.getByRole('button', { name: 'Sign in' }).click();
      await admin.waitForURL(`${portico.url}/admin/overview`);
      await admin.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      await admin.getByRole('link', { name: 'Users' }).click();
      await admin.getByRole('link', { name: ADMIN.email }).waitFor();
      await admin.getByText(`Signed in as ${ADMIN.email}`).waitFor();
      await shoot(admin, 'users');
      await admin.getByRole('link', { name: ADMIN.email }).click();
      await admin.getByRole('heading', { level: 1, name: ADMIN.email }).waitFor();
      await admin
        .getByRole('group', { name: 'Roles' })
        .getByLabel(/^admin/)
        .waitFor();
      expect(
        await admin
          .getByRole('group', { name: 'Roles' })
          .getByLabel(/^admin/)
          .isChecked(),
      ).toBe(true);
      await shoot(admin, 'user');
      expect(errors).toEqual([]);
    });

    it('invites a second admin, who accepts in another browser, then revokes that session live', async () => {
      await admin
        .getByRole('navigation', { name: 'Sections' })
        .getByRole('link', { name: 'Invites' })
        .click();
      await admin.getByRole('heading', { level: 1, name: 'Invites' }).waitFor();
      await admin.getByLabel('Email').fill(BOB.email);
      await admin.getByLabel('admin', { exact: true }).check();
      await admin.getByRole('button', { name: 'Create invite' }).click();
      const link = await admin.getByLabel('Invite link').inputValue();
      expect(link).toMatch(new RegExp(`^${portico.url}/auth/redeem\\?token=`));
      await admin.getByRole('cell', { name: BOB.email, exact: true }).waitFor();
      await shoot(admin, 'invites');

      // The admin watches Sessions while Bob signs up: his session comes in live.
      const listening = subscribedTo(portico, 'session.created');
      await admin.getByRole('link', { name: 'Sessions' }).click();
      await admin.getByRole('heading', { level: 1, name: 'Sessions' }).waitFor();
      await listening;
      const revoke = admin.getByRole('button', { name: `Revoke the session of ${BOB.email} from 127.0.0.1` });
      expect(await revoke.count()).toBe(0);

      const bobContext = await browser.newContext({ viewport: LAPTOP });
      try {
        const bob = await bobContext.newPage();
        bob.setDefaultTimeout(10_000);
        watchErrors(bob, errors);
        await bob.goto(link);
        await bob.getByRole('heading', { name: 'Accept your invite' }).waitFor();
        await bob.getByLabel('Name').fill(BOB.name);
        await bob.getByLabel(/^Password/).fill(BOB.password);
        await bob.getByRole('button', { name: 'Create my account' }).click();
        await bob.waitForURL(`${portico.url}/admin/overview`);
        await bob.getByText(`Signed in as ${BOB.email}`).waitFor();
        await revoke.waitFor();
        await bob.goto(`${portico.url}/admin/blobs`);
        await bob.getByRole('heading', { level: 1, name: 'Blobs' }).waitFor();
        await shoot(admin, 'sessions');
        // A revoke asks first, naming what it revokes.
        await revoke.click();
        await admin
          .getByRole('group', { name: `Revoke the session of ${BOB.email} from 127.0.0.1?` })
          .getByRole('button', { name: 'Revoke', exact: true })
          .click();
        // Bob's console leaves by itself, pushed by sessionRevoked: nobody reloads it.
        await bob.waitForURL(/\/login\?reason=revoked/);
        await bob.getByText('Your session was revoked. Sign in again to continue.').waitFor();
        await expect.poll(() => revoke.count()).toBe(0);
      } finally {
        await bobContext.close();
      }
      expect(errors).toEqual([]);
    });

    it('creates a document, finds it through an index, and explains a version conflict', async () => {
      await admin.getByRole('link', { name: 'Data', exact: true }).click();
      await admin.getByRole('link', { name: 'notes', exact: true }).click();
      await admin.getByRole('link', { name: 'New document' }).click();
      const editor = admin.getByLabel('Document JSON');
      // The template is what the schema declares, each with its type's placeholder.
      await expect
        .poll(async () => JSON.parse(await editor.inputValue()))
        .toEqual({ title: '', tag: '', rank: 0 });
      // Checked as typed, each problem at its JSON pointer; nothing is disabled.
      await editor.fill('{"tag": "red", "rank": "3"');
      const check = admin.locator('#document-check');
      await check.getByText(/^Not valid JSON/).waitFor();
      await editor.fill(JSON.stringify({ tag: 'red', rank: '3' }));
      await check.getByText('Instance type "string" is invalid. Expected "integer".').waitFor();
      expect(await check.locator('li', { hasText: 'Expected "integer"' }).locator('code').textContent()).toBe(
        '/rank',
      );
      await check.getByText('Instance does not have required property "title".').waitFor();
      await shoot(admin, 'data-check');
      await editor.fill(JSON.stringify({ tag: 'red', rank: 3, title: 'Hello' }));
      await check.getByText('Matches the collection’s JSON Schema.').waitFor();
      await admin.getByRole('button', { name: 'Create document' }).click();
      const heading = admin.getByRole('heading', { level: 1, name: /^Document / });
      await heading.waitFor();
      const id = (await heading.textContent())!.replace('Document ', '');
      const other = await api.gql(PutDocumentDocument, {
        collection: 'notes',
        data: { tag: 'red', rank: 7, title: 'Second', meta: { long: 'x'.repeat(200) } },
      });
      const otherId = other.data!.putDocument.id;

      await admin.getByRole('link', { name: '← notes' }).click();
      await admin.getByLabel('Index').selectOption('byTag');
      await admin.getByLabel('tag', { exact: true }).fill('red');
      await admin.getByLabel('Lower value').fill('2');
      await admin.getByRole('button', { name: 'Run query' }).click();
      await admin.getByText('2 documents match.').waitFor();
      await admin.getByLabel('Lower value').fill('4');
      await admin.getByRole('button', { name: 'Run query' }).click();
      await admin.getByText('1 document matches.').waitFor();
      await admin.getByLabel('Lower value').fill('8');
      await admin.getByRole('button', { name: 'Run query' }).click();
      await admin.getByText('0 documents match.').waitFor();
      await admin.getByLabel('Lower value').fill('3');
      await admin.getByRole('button', { name: 'Run query' }).click();
      await admin.getByText('2 documents match.').waitFor();

      // The fields are columns, the index's first, the schema's next; only the index's sort.
      const table = admin.getByRole('table', { name: 'Documents of notes' });
      const headers = await table.getByRole('columnheader').allTextContents();
      expect(headers.slice(0, 5).map((header) => header.replace(/ [▲▼]$/, ''))).toEqual([
        'Id',
        'tag',
        'rank',
        'title',
        'meta',
      ]);
      await table.getByRole('columnheader', { name: 'title', exact: true }).waitFor();
      expect(await table.getByRole('columnheader', { name: 'title' }).getByRole('button').count()).toBe(0);
      const firstIds = () => table.getByRole('row').nth(1).getByRole('link').textContent();
      expect(await firstIds()).toBe(id);
      await table.getByRole('button', { name: 'rank: sort descending' }).click();
      await expect.poll(firstIds).toBe(otherId);
      await expect
        .poll(() => table.getByRole('columnheader', { name: /^tag/ }).getAttribute('aria-sort'))
        .toBe('descending');
      // The raw JSON is one click away.
      await table.getByText(`JSON of ${id}`).click();
      await table.getByText('"title": "Hello"').waitFor();
      // Nothing widens the page: the table scrolls in its box, and is cards on a phone.
      const overflows = () => admin.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
      expect(await overflows()).toBe(false);
      await shoot(admin, 'data-query');
      await admin.setViewportSize(PHONE);
      await expect.poll(overflows).toBe(false);
      await shoot(admin, 'data-query-phone');
      await admin.setViewportSize(LAPTOP);

      // Every field equal leaves no field for a range: the range's values go with it.
      await admin.getByLabel('rank', { exact: true }).fill('3');
      await expect.poll(() => admin.getByLabel('Lower value').count()).toBe(0);
      await admin.getByRole('button', { name: 'Run query' }).click();
      await admin.getByText('1 document matches.').waitFor();
      await admin.getByLabel('rank', { exact: true }).fill('');
      expect(await admin.getByLabel('Lower value').inputValue()).toBe('');
      // A query refused before it is sent leaves no rows of another query on screen.
      await admin.getByLabel('tag', { exact: true }).fill('');
      await admin.getByLabel('rank', { exact: true }).fill('3');
      await admin.getByRole('button', { name: 'Run query' }).click();
      await admin.getByText('Fill “tag” too: equality applies to leading fields, in order.').waitFor();
      expect(await table.count()).toBe(0);
      expect(await admin.getByRole('status').filter({ hasText: 'match' }).count()).toBe(0);
      await admin.getByLabel('tag', { exact: true }).fill('red');
      await admin.getByRole('button', { name: 'Run query' }).click();
      await admin.getByRole('link', { name: id }).waitFor();

      await admin.getByRole('link', { name: id }).click();
      const json = admin.getByLabel('Document JSON');
      await expect.poll(() => json.inputValue()).toContain('"title": "Hello"');
      // Someone else writes version 2 while the admin edits version 1.
      const patched = await api.gql(PatchDocumentDocument, { collection: 'notes', id, patch: { rank: 5 } });
      expect(patched.data?.patchDocument.version).toBe(2);
      await json.fill(JSON.stringify({ tag: 'red', rank: 3, title: 'Hi' }));
      await admin.getByRole('button', { name: 'Save' }).click();
      const alert = admin.getByRole('alert');
      await alert.getByText('CONFLICT').waitFor();
      await alert
        .getByText('Someone saved this document since you opened version 1: it is at version 2 now.')
        .waitFor();
      await shoot(admin, 'data-conflict');
      await admin.getByRole('button', { name: 'Load the current version (discards your text)' }).click();
      await expect.poll(() => json.inputValue()).toContain('"rank": 5');
      await admin.getByRole('button', { name: 'Save' }).click();
      await admin.getByText('Saved as version 3.').waitFor();
      expect(errors).toEqual([]);
    });

    it('uploads a blob with progress, previews, downloads and deletes it', async () => {
      await admin.getByRole('link', { name: 'Blobs' }).click();
      // Nothing stored yet: the upload box leads, with what blobs are for.
      await admin.getByRole('heading', { name: 'Upload your first blob' }).waitFor();
      await admin.getByText('Blobs are files that apps upload here').waitFor();
      expect(await admin.getByRole('heading', { name: 'Stored blobs' }).count()).toBe(0);
      await shoot(admin, 'blobs-empty');
      // A slow link (1 MiB at 1 MiB/s), so that the upload's progress is there to see.
      const network = await adminContext.newCDPSession(admin);
      await network.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: 1024 * 1024,
      });
      await admin.getByLabel('File').setInputFiles({
        name: 'zeros.bin',
        mimeType: 'application/octet-stream',
        buffer: Buffer.alloc(1024 * 1024),
      });
      await admin.getByRole('button', { name: 'Upload', exact: true }).click();
      const progress = admin.getByLabel('Upload progress');
      await expect.poll(async () => Number(await progress.getAttribute('value'))).toBeGreaterThan(0);
      expect(Number(await progress.getAttribute('max'))).toBe(1024 * 1024);
      await shoot(admin, 'blobs-upload');
      await admin.getByText('Uploaded zeros.bin (1.0 MiB).').waitFor();
      await network.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: -1,
      });
      await network.detach();

      await admin.getByLabel('File').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
      await admin.getByRole('button', { name: 'Upload', exact: true }).click();
      await admin.getByText('Uploaded dot.png (75 B).').waitFor();
      const preview = admin.getByRole('img', { name: 'Preview of dot.png' });
      await preview.waitFor();
      await expect.poll(() => preview.evaluate((image: HTMLImageElement) => image.naturalWidth)).toBe(2);
      // A long name without spaces, which must wrap inside its card.
      const report = `quarterly-report-for-the-board-${'with-every-appendix-'.repeat(4)}final.pdf`;
      await admin.getByLabel('File').setInputFiles({
        name: report,
        mimeType: 'application/pdf',
        buffer: Buffer.from('%PDF-1.4 a report'),
      });
      await admin.getByRole('button', { name: 'Upload', exact: true }).click();
      await admin.getByText(`Uploaded ${report}`).waitFor();
      // Each type in words, its MIME type beside it.
      const card = (name: string) => admin.getByRole('listitem').filter({ hasText: name });
      await card(report).getByText('PDF document', { exact: true }).waitFor();
      await card(report).getByText('application/pdf', { exact: true }).waitFor();
      await card('zeros.bin').getByText('Binary file', { exact: true }).waitFor();
      await card('dot.png').getByText('PNG image', { exact: true }).waitFor();
      await card('dot.png').getByText('75 B', { exact: true }).waitFor();
      expect(await spills(admin)).toEqual([]);
      // Asking to delete the long name keeps the question inside the card.
      await admin.getByRole('button', { name: `Delete ${report}` }).click();
      await admin.getByRole('group', { name: `Delete ${report}?` }).waitFor();
      expect(await spills(admin)).toEqual([]);
      await admin
        .getByRole('group', { name: `Delete ${report}?` })
        .getByRole('button', { name: 'Cancel' })
        .click();
      await shoot(admin, 'blobs');

      // The type filter asks the server for one MIME family.
      await admin.getByLabel('Type').selectOption({ label: 'Images' });
      await expect.poll(() => admin.getByRole('button', { name: 'Delete zeros.bin' }).count()).toBe(0);
      await preview.waitFor();
      expect(await admin.getByRole('button', { name: /^Delete / }).count()).toBe(1);
      await admin.getByLabel('Type').selectOption({ label: 'Video' });
      await admin.getByText('No video.').waitFor();
      await admin.getByLabel('Type').selectOption({ label: 'All types' });
      await admin.getByRole('button', { name: 'Delete zeros.bin' }).waitFor();

      await admin.setViewportSize(PHONE);
      await preview.waitFor();
      expect(await spills(admin)).toEqual([]);
      await shoot(admin, 'blobs-phone');
      await admin.setViewportSize(LAPTOP);
      const [download] = await Promise.all([
        admin.waitForEvent('download'),
        admin.getByRole('link', { name: 'Download dot.png' }).click(),
      ]);
      expect(download.suggestedFilename()).toBe('dot.png');
      expect(await readFile((await download.path())!)).toEqual(PNG);

      // A delete asks first, with the confirm button focused for the keyboard.
      await admin.getByRole('button', { name: 'Delete dot.png' }).click();
      const confirm = admin
        .getByRole('group', { name: 'Delete dot.png?' })
        .getByRole('button', { name: 'Delete' });
      await expect.poll(() => confirm.evaluate((button) => button === document.activeElement)).toBe(true);
      await admin.keyboard.press('Enter');
      await expect.poll(() => admin.getByRole('img', { name: 'Preview of dot.png' }).count()).toBe(0);
      await admin.getByRole('button', { name: 'Delete zeros.bin' }).waitFor();
      expect(errors).toEqual([]);
    });

    it('shows leases, API keys and the audit log', async () => {
      await admin.getByRole('link', { name: 'Leases' }).click();
      // None yet: what a lease is for, and how to take one.
      await admin.getByText('A lease is a lock with a time to live').waitFor();
      expect(await admin.getByRole('link', { name: 'Leases in the manual' }).getAttribute('href')).toBe(
        '/docs/leases',
      );
      await shoot(admin, 'leases-empty');
      const lease = await api.gql(AcquireLeaseDocument, { key: 'jobs/nightly', ttlSeconds: 600 });
      expect(lease.data?.acquireLease?.token).toBe(1);
      await admin.getByLabel('Key starts with').fill('jobs/');
      await admin.getByRole('button', { name: 'Filter' }).click();
      await admin.getByRole('cell', { name: 'jobs/nightly' }).waitFor();
      // Who holds it, for the admin: the user and the kind of credential; the opaque id in small print.
      const holder = admin.getByRole('cell', { name: `${ADMIN.email} · session` });
      await holder.waitFor();
      await holder.getByText(lease.data!.acquireLease!.holder, { exact: true }).waitFor();
      await shoot(admin, 'leases');

      await admin.getByRole('link', { name: 'Store' }).click();
      await admin.getByText('Answering').waitFor();
      await admin.getByText(backend === 'sqlite' ? 'SQLite' : 'PostgreSQL', { exact: true }).waitFor();
      await admin.getByText('DATABASE_URL', { exact: true }).waitFor();
      // No backup yet: the Backups line says how to take one.
      await admin.getByText('None yet', { exact: true }).waitFor();
      // A switch asks first, says data is not copied, and can be undone.
      await admin.getByLabel('Store URL').fill('sqlite:console-store.sqlite');
      await admin.getByRole('button', { name: 'Switch', exact: true }).click();
      await shoot(admin, 'store');
      await admin.getByRole('button', { name: 'Switch; data is not copied' }).click();
      await admin.getByRole('status').filter({ hasText: 'The store is now sqlite:' }).waitFor();
      await admin.getByText('an admin’s switch', { exact: true }).waitFor();
      await admin.getByRole('button', { name: 'Back to DATABASE_URL' }).click();
      await admin.getByRole('button', { name: 'Go back; data is not copied' }).click();
      await admin.getByRole('status').filter({ hasText: 'The store is DATABASE_URL’s again' }).waitFor();
      await admin.getByText('DATABASE_URL', { exact: true }).waitFor();

      await admin.getByRole('link', { name: 'API keys & devices' }).click();
      // What each scope grants, from the configuration: the blob and collection rules name them.
      await admin.getByRole('cell', { name: 'upload and delete blobs' }).waitFor();
      await admin.getByRole('cell', { name: 'read documents of notes', exact: true }).waitFor();
      await admin.getByLabel('Name').fill('backup job');
      await admin.getByLabel('Scopes, separated by spaces').fill('blobs:write');
      await admin.getByRole('button', { name: 'Create key' }).click();
      const secret = await admin.getByLabel('API key', { exact: true }).inputValue();
      expect(secret).toMatch(/^pk_/);
      const program = portico.client();
      const bearer = { authorization: `Bearer ${secret}` };
      const viaKey = await program.gql(ViewerDocument, undefined, bearer);
      expect(viaKey.data?.viewer.scopes).toEqual(['blobs:write']);
      await shoot(admin, 'keys');
      await admin.getByRole('button', { name: 'Revoke the key backup job' }).click();
      await admin
        .getByRole('group', { name: 'Revoke the key backup job?' })
        .getByRole('button', { name: 'Revoke', exact: true })
        .click();
      await expect.poll(() => admin.getByRole('cell', { name: 'backup job' }).count()).toBe(0);
      const revoked = await program.gql(ViewerDocument, undefined, bearer);
      expect(revoked.data?.viewer.user).toBeNull();

      await admin.getByRole('link', { name: 'Audit log' }).click();
      await admin.getByLabel('User’s email').fill(BOB.email);
      await admin.getByLabel('Kind').selectOption('INVITE_ACCEPTED');
      await admin.getByRole('button', { name: 'Apply filter' }).click();
      await admin.getByRole('status').getByText(BOB.email).waitFor();
      await admin.getByRole('cell', { name: 'Invite accepted', exact: true }).waitFor();
      expect(await admin.getByRole('cell', { name: 'Signed up', exact: true }).count()).toBe(0);
      await shoot(admin, 'audit');

      await admin.setViewportSize(PHONE);
      await admin.getByRole('link', { name: 'Users' }).click();
      await admin.getByRole('link', { name: BOB.email }).waitFor();
      await shoot(admin, 'users-phone');
      await admin.setViewportSize(LAPTOP);
      expect(errors).toEqual([]);
    });

    it('fits every screen at laptop and phone width, with no errors', async () => {
      const viewer = await api.gql(ViewerDocument);
      const notes = await api.gql(DocumentsDocument, { collection: 'notes', first: 1 });
      const adminId = viewer.data!.viewer.user!.id;
      const documentId = notes.data!.documents.edges[0]!.node.id;
      const screens = [
        ['overview', '/overview'],
        ['users', '/users'],
        ['user', `/users/${encodeURIComponent(adminId)}`],
        ['invites', '/invites'],
        ['sessions', '/sessions'],
        ['keys', '/keys'],
        ['data', '/data'],
        ['data-collection', '/data/notes'],
        ['data-document', `/data/notes/${encodeURIComponent(documentId)}`],
        ['data-new', '/data/notes/new'],
        ['blobs', '/blobs'],
        ['leases', '/leases'],
        ['store', '/store'],
        ['audit', '/audit'],
        ['not-found', '/no-such-screen'],
      ] as const;
      const found: string[] = [];
      for (const [size, suffix] of [
        [LAPTOP, ''],
        [PHONE, '-phone'],
      ] as const) {
        await admin.setViewportSize(size);
        for (const [name, path] of screens) {
          await admin.goto(`${portico.url}/admin${path}`);
          await admin.getByRole('heading', { level: 1 }).waitFor();
          // Loaded: nothing says "Loading…", and the requests are answered.
          await expect
            .poll(() => admin.getByText('Loading…').count(), {
              message: `${name} at ${size.width} px loads`,
              timeout: 10_000,
            })
            .toBe(0);
          await admin.waitForLoadState('networkidle');
          if (name === 'not-found')
            await admin.getByRole('heading', { level: 1, name: 'Not found' }).waitFor();
          found.push(...(await spills(admin)).map((spill) => `${name} at ${size.width} px: ${spill}`));
          // The other tests' shots show the screens doing something: they stay.
          if (!shot.has(name + suffix)) await shoot(admin, name + suffix);
        }
      }

      // The check itself sees a spill: something too wide in a card.
      await admin.setViewportSize(LAPTOP);
      await admin.goto(`${portico.url}/admin/keys`);
      await admin.getByRole('heading', { level: 1 }).waitFor();
      await admin.evaluate(() => {
        const wide = document.createElement('div');
        wide.id = 'too-wide';
        wide.style.width = '3000px';
        wide.style.height = '1px';
        const long = document.createElement('p');
        long.id = 'too-long';
        long.style.width = '10rem';
        long.textContent = 'x'.repeat(200);
        document.querySelector('main .card')!.append(wide, long);
      });
      const injected = await spills(admin);
      expect(injected).toContainEqual(expect.stringMatching(/^the page is \d+ px wide/));
      expect(injected).toContainEqual(expect.stringMatching(/^<div#too-wide> spans/));
      expect(injected).toContainEqual(expect.stringMatching(/^the text of <p#too-long> “x+” is \d+ px wide/));

      expect(found).toEqual([]);
      expect(errors).toEqual([]);
      // Thirty screens, each loaded in full.
    }, 120_000);

    it("shows the gateway's health first, live: the charts move under load", async () => {
      await admin
        .getByRole('navigation', { name: 'Sections' })
        .getByRole('link', { name: 'Overview' })
        .click();
      await admin.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      const tiles = admin.getByRole('list', { name: 'Status' });
      const kind = backend === 'sqlite' ? 'SQLite' : 'PostgreSQL';
      for (const name of ['System database', 'Store']) {
        const tile = tiles.locator(`[data-tile="${name}"]`);
        await tile.getByText('Answering').waitFor();
        await tile.getByText(kind, { exact: true }).waitFor();
      }
      // What this suite did is among the recent events.
      await admin.getByRole('cell', { name: 'Store reset', exact: true }).waitFor();

      const traffic = admin.locator('[data-chart="traffic"]');
      const latest = async (chart: string, series: string) =>
        Number(
          await admin
            .locator(`[data-chart="${chart}"] [data-series="${series}"]`)
            .getAttribute('data-latest'),
        );
      const points = () => samplesCharted(admin);
      const pixels = () =>
        traffic.locator('canvas').evaluate((canvas: HTMLCanvasElement) => canvas.toDataURL());
      await expect.poll(points).toBeGreaterThan(1);
      const [pointsBefore, pixelsBefore] = [await points(), await pixels()];

      // Load until the chart shows it: bursts of requests, a few of them refused (GraphQL errors).
      const anonymous = portico.client();
      let loading = true;
      const load = (async () => {
        while (loading) {
          await Promise.all([
            ...Array.from({ length: 40 }, () => api.gql(ViewerDocument)),
            ...Array.from({ length: 4 }, () => anonymous.gql(GatewayOverviewDocument)),
          ]);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      })();
      try {
        await expect
          .poll(() => latest('traffic', 'Requests'), { timeout: 10_000 })
          .toBeGreaterThanOrEqual(20);
        await expect.poll(() => latest('traffic', 'GraphQL errors'), { timeout: 5000 }).toBeGreaterThan(0);
        await expect.poll(() => latest('latency', 'p99'), { timeout: 5000 }).toBeGreaterThan(0);
      } finally {
        loading = false;
        await load;
      }
      expect(await points()).toBeGreaterThan(pointsBefore);
      expect(await pixels()).not.toBe(pixelsBefore);
      // The page's own subscriptions (this one, and its session's) are open over the WebSocket.
      expect(await latest('subscriptions', 'WebSocket')).toBeGreaterThanOrEqual(1);
      await shoot(admin, 'overview');

      await admin.setViewportSize(PHONE);
      await admin.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      const overflows = () => admin.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
      await expect.poll(overflows).toBe(false);
      await shoot(admin, 'overview-phone');
      await admin.setViewportSize(LAPTOP);
      expect(await overflows()).toBe(false);
      expect(errors).toEqual([]);
    });

    it('keeps the Overview while the gateway is away, says so, and picks up when it is back', async () => {
      await admin.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      const points = () => samplesCharted(admin);
      await expect.poll(points).toBeGreaterThan(1);
      const { dataDir, databaseUrl, url } = portico;
      await portico.stop();
      const stale = admin.getByText('No news from the gateway since');
      await stale.waitFor({ timeout: 15_000 });
      // Every screen says so too, in the console's own notice.
      const notice = admin.getByRole('status').filter({ hasText: 'The gateway is not answering; retrying…' });
      await notice.waitFor();
      await shoot(admin, 'overview-away');
      const kept = await points();
      expect(kept).toBeGreaterThan(1);
      await admin.locator('[data-tile="Store"]').getByText('Answering').waitFor();
      replaced = portico;
      portico = await startGateway({
        backend,
        config: CONFIG,
        port: Number(new URL(url).port),
        dataDir,
        databaseUrl,
        env: { PORTICO_PUBLIC_URL: url },
      });
      await admin
        .getByRole('status')
        .filter({ hasText: 'The gateway is back.' })
        .waitFor({ timeout: 30_000 });
      expect(await notice.count()).toBe(0);
      await expect.poll(() => stale.count(), { timeout: 30_000 }).toBe(0);
      await expect.poll(points).toBeGreaterThan(kept);
      // While it went and was away the browser said so (connections cut or refused); nothing else went wrong.
      const refused =
        /net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|SOCKET_NOT_CONNECTED|EMPTY_RESPONSE)|WebSocket connection to .* failed/;
      expect(errors.filter((error) => !refused.test(error))).toEqual([]);
    });

    it('links to GraphiQL and signs out', async () => {
      await admin.getByRole('link', { name: 'GraphiQL' }).click();
      // GraphiQL's own page may fetch its scripts from a CDN, which this machine cannot reach.
      await admin.waitForURL(`${portico.url}/graphql`, { waitUntil: 'commit' });
      await admin.goBack();
      await admin.getByRole('button', { name: 'Sign out' }).click();
      await admin.waitForURL(`${portico.url}/login`);
      await admin.goto(`${portico.url}/admin/users`);
      await expect.poll(() => admin.url()).toBe(`${portico.url}/login?next=/admin/users`);
    });

    // The shared operations it also runs are the typed client's, checked by the suites of their files.
    it('has run every operation of client/operations/console.graphql', async () => {
      const source = await readFile(`${ROOT}client/operations/console.graphql`, 'utf8');
      const operations = parse(source)
        .definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION)
        .map((definition) => definition.name!.value);
      expect(operations.length).toBeGreaterThan(0);
      expect(operations.filter((name) => !executed.has(name))).toEqual([]);
    });
  });
});
