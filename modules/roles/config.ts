import { z } from 'zod';

export const ROLE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
export const SCOPE = /^[A-Za-z0-9_.:*-]{1,128}$/;
export const ADMIN = 'admin';

export const rolesConfig = {
  roles: z
    .record(
      z.string().regex(ROLE_NAME, 'role names are lower-case letters, digits, "_" and "-"'),
      z.array(z.string().regex(SCOPE, 'scopes are letters, digits and . : _ - *')),
    )
    .default({}),
  defaultRoles: z.array(z.string()).default([]),
};

declare module '../../src/config.ts' {
  interface Settings {
    roles: Record<string, string[]>;
    defaultRoles: string[];
  }
  interface ConfigFile {
    /** Role → scopes; "admin" always exists and has scope "admin". */
    roles?: Record<string, string[]>;
    /** Given to users who sign up or accept an invite without roles. */
    defaultRoles?: string[];
  }
}
