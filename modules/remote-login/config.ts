import { z } from 'zod';

export const remoteLoginConfig = {
  remoteLogin: z
    .strictObject({
      endpoint: z.url({ protocol: /^https?$/ }).optional(),
      /** How long to wait for the endpoint before answering that it is unreachable. */
      timeoutMs: z.number().int().min(100).max(60_000).default(5000),
    })
    .prefault({}),
};

export interface RemoteLoginSettings {
  endpoint?: string;
  timeoutMs: number;
}

declare module '../../src/config.ts' {
  interface Settings {
    remoteLogin: RemoteLoginSettings;
  }
  interface ConfigFile {
    /** For method "remote": where credentials are POSTed as JSON. */
    remoteLogin?: Partial<RemoteLoginSettings>;
  }
}
