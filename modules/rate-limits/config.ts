import { z } from 'zod';

export const rateLimitsConfig = {
  rateLimits: z
    .strictObject({
      /** Consecutive failures per account and IP before a growing delay starts. */
      accountFailures: z.number().int().min(1).max(1000).default(10),
      /** Failures per IP and window before that IP waits for the window's end. */
      ipFailures: z.number().int().min(1).max(100_000).default(100),
      /** Sign-ups per IP and window. */
      signUps: z.number().int().min(1).max(100_000).default(10),
      /** Login links per address and IP, and (×6) per IP, per window. */
      loginLinks: z.number().int().min(1).max(1000).default(5),
      windowMinutes: z.number().int().min(1).max(1440).default(15),
    })
    .prefault({}),
};

export interface RateLimitSettings {
  accountFailures: number;
  ipFailures: number;
  signUps: number;
  loginLinks: number;
  windowMinutes: number;
}

declare module '../../src/config.ts' {
  interface Settings {
    rateLimits: RateLimitSettings;
  }
  interface ConfigFile {
    /** Limits on login, token and sign-up attempts (docs/security.md). */
    rateLimits?: Partial<RateLimitSettings>;
  }
}
