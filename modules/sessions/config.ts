import { z } from 'zod';

/** The contract's method ids: valid in `methods` even before their module is present. */
export const BUILTIN_METHODS = ['password', 'magic-link', 'remote', 'device'] as const;

export const sessionsConfig = {
  session: z
    .strictObject({
      idleTimeoutMinutes: z.number().int().min(1).max(525_600).default(1440),
      absoluteTimeoutHours: z.number().int().min(1).max(8760).default(720),
      cookieSecure: z.boolean().default(false),
      // 0 turns the re-check off: only for tests that prove it is what catches lost events.
      recheckSeconds: z.number().int().min(0).max(60).default(5),
    })
    .prefault({}),
  methods: z
    .array(z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'method ids are lower-case letters, digits and dashes'))
    .refine((methods) => new Set(methods).size === methods.length, 'methods are listed once each')
    .default(['password', 'magic-link']),
};

export interface SessionSettings {
  idleTimeoutMinutes: number;
  absoluteTimeoutHours: number;
  cookieSecure: boolean;
  /** How often the sessions and API keys behind open subscriptions are re-checked (0: never). */
  recheckSeconds: number;
}

declare module '../../src/config.ts' {
  interface Settings {
    session: SessionSettings;
    methods: string[];
  }
  interface ConfigFile {
    session?: Partial<SessionSettings>;
    /** Enabled login methods: password, magic-link, remote, device, or one written in code. */
    methods?: string[];
  }
}
