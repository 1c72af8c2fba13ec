import { readSavedCredential, saveCredential } from './credentials.ts';
import { printDeviceCode, runDeviceFlow } from './device-flow.ts';
import { parseJson } from './errors.ts';
import type { Platform } from './platform.ts';

/** Progress granularity of Node uploads. */
const CHUNK_BYTES = 64 * 1024;

/**
 * The blob's bytes as a stream that reports how many of them the HTTP stack has taken.
 * Read slice by slice: Node hands a Blob's whole content out as one chunk.
 */
function counted(
  body: Blob,
  onProgress: (loaded: number, total: number) => void,
): ReadableStream<Uint8Array> {
  let loaded = 0;
  return new ReadableStream({
    async pull(controller) {
      if (loaded === body.size) {
        // An empty body still tells the caller it is complete.
        if (body.size === 0) onProgress(0, 0);
        controller.close();
        return;
      }
      const chunk = new Uint8Array(await body.slice(loaded, loaded + CHUNK_BYTES).arrayBuffer());
      controller.enqueue(chunk);
      loaded += chunk.byteLength;
      onProgress(loaded, body.size);
    },
  });
}

export const platform: Platform = {
  async upload({ url, body, headers, credentials, fetch, onProgress, signal }) {
    // `duplex` is required by Node's fetch for a streamed body; the DOM types lack it.
    const init: RequestInit & { duplex: 'half' } = {
      method: 'POST',
      // The declared length lets the gateway refuse an oversized blob before any byte travels.
      headers: { ...headers, 'content-length': String(body.size) },
      body: onProgress ? counted(body, onProgress) : body,
      duplex: 'half',
      credentials,
      signal,
    };
    const response = await fetch(url, init);
    return { status: response.status, body: parseJson(await response.text()) };
  },
  savedKeys: {
    read: async (url) => (await readSavedCredential(url))?.apiKey,
    async renew(url, { fetch, onDeviceCode = printDeviceCode }) {
      const requestedScope = (await readSavedCredential(url))?.requestedScope;
      const grant = await runDeviceFlow(url, { fetch, onDeviceCode, scope: requestedScope });
      await saveCredential(url, { apiKey: grant.accessToken, requestedScope, grantedScope: grant.scope });
      return grant.accessToken;
    },
  },
};
