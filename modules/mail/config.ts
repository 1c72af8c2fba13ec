import { z } from 'zod';

export const mailConfig = {
  mail: z
    .strictObject({
      /** "console" prints each message to the log; or an `smtp://` / `smtps://` URL. */
      transport: z
        .string()
        .refine(
          (value) => value === 'console' || /^smtps?:\/\/[^\s]+$/.test(value),
          'expected "console" or an smtp:// URL',
        )
        .default('console'),
      /** The sender; defaults to no-reply at the public URL's host. */
      from: z.string().min(3).max(320).optional(),
    })
    .prefault({}),
};

export interface MailSettings {
  transport: string;
  from?: string;
}

declare module '../../src/config.ts' {
  interface Settings {
    mail: MailSettings;
  }
  interface ConfigFile {
    mail?: Partial<MailSettings>;
  }
}
