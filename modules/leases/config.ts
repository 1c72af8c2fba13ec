import { z } from 'zod';

const leases = z.strictObject({
  /** The longest `ttlSeconds` of an acquire or renew. */
  maxTtlSeconds: z.number().int().min(1).max(86_400).default(3600),
  /** The longest `waitSeconds` of an acquire. */
  maxWaitSeconds: z.number().int().min(0).max(300).default(30),
  /** How often each instance looks for leases whose session or API key has ended (expiry has no event). */
  sweepSeconds: z.number().int().min(1).max(3600).default(5),
});

export const leasesConfig = { leases: leases.prefault({}) };

declare module '../../src/config.ts' {
  interface Settings {
    leases: z.output<typeof leases>;
  }
  interface ConfigFile {
    /** TTL locks with fencing tokens. */
    leases?: z.input<typeof leases>;
  }
}
