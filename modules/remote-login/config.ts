import { z } from 'zod';

export const remoteLoginConfig = {
  remoteLogin: z
    .strictObject({
      endpoint: z.url({ protocol: /^https?$/ }).optional(),
      /** How long to wait for the endpoint before answering that it is unreachable. */
      timeoutMs: z.number().int().min(100).max(60_000).default(5000),
      /**
       * A remote identity seen for the first time may attach to an existing local account with
       * its email. Off by default: whoever runs the remote could then take over any local
       * account, the admin's included, by asserting its address.
       */
      linkByEmail: z.boolean().default(false),
    })
    .prefault({}),
};

export interface RemoteLoginSettings {
  endpoint?: string;
  timeoutMs: number;
  linkByEmail: boolean;
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
