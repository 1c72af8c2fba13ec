import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends,
  bootstrapAdmin,
  startGateway,
  type TestClient,
  type TestGateway,
} from '../../test/harness.ts';

const calls = (): string[] => (globalThis as { blobDriverCalls?: string[] }).blobDriverCalls ?? [];

/** A portico.config.ts whose driver wraps the filesystem one in another folder and records each call. */
const CONFIG_FILE = `
import blobs from ${JSON.stringify(join(import.meta.dirname, 'index.ts'))};

export default {
  blobs: {
    maxBytes: 1000,
    storage: async ({ dataDir }) => {
      const inner = await blobs.api.createFsStorage(dataDir + '/elsewhere');
      const calls = (globalThis.blobDriverCalls = []);
      return Object.fromEntries(
        Object.entries(inner).map(([name, call]) => [name, (...args) => (calls.push(name), call(...args))]),
      );
    },
  },
};
`;

describe.each(backends)('a storage driver from portico.config.ts, on %s', (backend) => {
  let portico: TestGateway;
  let admin: TestClient;

  beforeAll(async () => {
    portico = await startGateway({
      backend,
      configFile: { name: 'portico.config.ts', content: CONFIG_FILE },
    });
    admin = await bootstrapAdmin(portico);
  });
  afterAll(() => portico?.close());

  it('stores and serves through the configured driver, with the configured limit', async () => {
    expect(calls()).toEqual(['sweep', 'contents']);
    const stored = await admin.request('/blobs', {
      method: 'POST',
      body: 'through the driver',
      headers: { 'x-portico-csrf': '1' },
    });
    expect(stored.status).toBe(201);
    const { sha256, url } = (await stored.json()) as { sha256: string; url: string };
    expect(calls()).toEqual(['sweep', 'contents', 'stage', 'exists', 'commit']);
    expect(await readdir(join(portico.dataDir, 'elsewhere', 'sha256', sha256.slice(0, 2)))).toEqual([sha256]);
    expect(await (await admin.request(url)).text()).toBe('through the driver');
    expect(calls().at(-1)).toBe('read');

    const tooLarge = await admin.request('/blobs', {
      method: 'POST',
      body: 'x'.repeat(1001),
      headers: { 'x-portico-csrf': '1' },
    });
    expect(tooLarge.status).toBe(413);
  });

  it('never lets a path-like or malformed id reach the driver', async () => {
    const before = calls().length;
    for (const path of [
      '/blobs/..%2F..%2Fportico.sqlite',
      '/blobs/..%2Felsewhere%2Fsha256',
      // (`/blobs/%2e%2e` itself is `/` to every URL parser, the client's and the server's: the start page.)
      '/blobs/%2e%2e%2fportico.sqlite',
      '/blobs/a%00b',
      '/blobs/ffffffffffffffffffffffffffffffff',
      `/blobs/${'0'.repeat(64)}`,
    ]) {
      expect((await admin.request(path)).status, path).toBe(404);
      expect((await admin.request(path, { method: 'HEAD' })).status, path).toBe(404);
    }
    expect(calls().slice(before)).toEqual([]);
  });
});
