import { z } from 'zod';
import roles, { type AccessRule } from '../roles/index.ts';
import type { StorageFactory } from './storage.ts';

/** 25 MiB (docs/configuration.md). */
export const DEFAULT_MAX_BYTES = 25 * 1024 * 1024;

const { accessRule } = roles.api;

const blobs = z
  .strictObject({
    maxBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_BYTES),
    read: accessRule.default('owner'),
    write: accessRule.default(['blobs:write']),
    sweepAfterSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600)
      .default(3600),
    // Code, so only from portico.config.ts/.mjs; a JSON file keeps the filesystem driver.
    storage: z
      .custom<StorageFactory>(
        (value) => typeof value === 'function',
        'expected a function returning a driver',
      )
      .optional(),
  })
  .prefault({});

export const blobsConfig = { blobs };

export interface BlobSettings {
  maxBytes: number;
  read: AccessRule;
  write: AccessRule;
  /** How old a temporary upload or unreferenced bytes must be before a sweep removes them. */
  sweepAfterSeconds: number;
  storage?: StorageFactory;
}

declare module '../../src/config.ts' {
  interface Settings {
    blobs: BlobSettings;
  }
  interface ConfigFile {
    /** Uploaded files: size limit, who may read and write them, the sweep's grace period and (in code) the storage driver. */
    blobs?: Partial<BlobSettings>;
  }
}
