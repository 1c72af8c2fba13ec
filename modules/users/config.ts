import { z } from 'zod';

export const SIGNUP_MODES = ['open', 'invite', 'closed'] as const;
export type SignupMode = (typeof SIGNUP_MODES)[number];

export const usersConfig = {
  signup: z.enum(SIGNUP_MODES).default('invite'),
};

declare module '../../src/config.ts' {
  interface Settings {
    signup: SignupMode;
  }
  interface ConfigFile {
    /** Who may sign up: anyone, invited people, or nobody. Default "invite". */
    signup?: SignupMode;
  }
}
