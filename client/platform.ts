import type { DeviceCodePrompt } from './device-flow.ts';

/**
 * What differs between browsers and Node. `#client-platform` (package.json `imports`) names
 * platform.browser.ts under the `browser` condition (vite) and platform.node.ts otherwise, so
 * the console's bundle never contains node:fs.
 */
export interface Platform {
  upload(request: UploadRequest): Promise<UploadResponse>;
  /** Node only: the keys `portico login` saves; browsers use the session cookie. */
  savedKeys?: SavedKeys;
}

export interface UploadRequest {
  url: string;
  body: Blob;
  headers: Record<string, string>;
  credentials: RequestCredentials;
  fetch: typeof fetch;
  onProgress?: (loaded: number, total: number) => void;
  signal?: AbortSignal;
}

export interface UploadResponse {
  status: number;
  /** The parsed JSON body; null when it is not JSON. */
  body: unknown;
}

export interface SavedKeys {
  /** The key saved for the gateway at `url`, if any. */
  read(url: string): Promise<string | undefined>;
  /** Runs the device flow again (with the scopes of the first login), saves the key and returns it. */
  renew(
    url: string,
    options: { fetch: typeof fetch; onDeviceCode?: (prompt: DeviceCodePrompt) => void },
  ): Promise<string>;
}
