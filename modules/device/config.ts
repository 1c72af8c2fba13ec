import { z } from 'zod';

export const deviceConfig = {
  device: z
    .strictObject({
      /** Seconds a device waits between polls (RFC 8628 default: 5); `slow_down` adds 5. */
      intervalSeconds: z.number().int().min(1).max(60).default(5),
    })
    .prefault({}),
};

declare module '../../src/config.ts' {
  interface Settings {
    device: { intervalSeconds: number };
  }
  interface ConfigFile {
    device?: { intervalSeconds?: number };
  }
}
