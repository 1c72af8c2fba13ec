import { Ajv2020 } from 'ajv/dist/2020.js';
import { z } from 'zod';
import roles, { type AccessRule } from '../roles/index.ts';

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const FIELD_PATH = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/;

const fields = z
  .array(z.string().regex(FIELD_PATH, 'a field path is names joined by dots'))
  .min(1, 'expected a non-empty list')
  .max(8, 'at most 8 fields');

const { accessRule } = roles.api;

const collection = z.strictObject({
  indexes: z
    .record(
      z.string().regex(NAME, 'index names are letters, digits, "_" and "-"'),
      z.union([fields, z.strictObject({ fields, unique: z.boolean().default(false) })]),
    )
    .default({}),
  read: accessRule.optional(),
  write: accessRule.optional(),
  schema: z.record(z.string(), z.unknown()).optional(),
});

export const collectionsConfig = {
  collections: z
    .record(z.string().regex(NAME, 'collection names are letters, digits, "_" and "-"'), collection)
    .default({}),
};

export interface IndexDefinition {
  name: string;
  fields: string[];
  unique: boolean;
}

export interface CollectionDefinition {
  name: string;
  indexes: Map<string, IndexDefinition>;
  read: AccessRule;
  write: AccessRule;
  schema?: Record<string, unknown>;
}

type CollectionInput = z.input<typeof collection>;

declare module '../../src/config.ts' {
  interface Settings {
    collections: Record<string, z.output<typeof collection>>;
  }
  interface ConfigFile {
    /** JSON document collections, queried only through the indexes declared here. */
    collections?: Record<string, CollectionInput>;
  }
}

type CollectionSettings = { collections: Record<string, z.output<typeof collection>> };
const cache = new WeakMap<CollectionSettings, Map<string, CollectionDefinition>>();

/** The collections of the settings, with defaults applied (`<name>:read` / `<name>:write`); built once. */
export function definitions(settings: CollectionSettings): Map<string, CollectionDefinition> {
  const cached = cache.get(settings);
  if (cached) return cached;
  const result = new Map<string, CollectionDefinition>();
  for (const [name, config] of Object.entries(settings.collections)) {
    const indexes = new Map<string, IndexDefinition>();
    for (const [indexName, index] of Object.entries(config.indexes)) {
      indexes.set(
        indexName,
        Array.isArray(index)
          ? { name: indexName, fields: index, unique: false }
          : { name: indexName, fields: index.fields, unique: index.unique },
      );
    }
    result.set(name, {
      name,
      indexes,
      read: config.read ?? [`${name}:read`],
      write: config.write ?? [`${name}:write`],
      schema: config.schema,
    });
  }
  cache.set(settings, result);
  return result;
}

/** One Ajv (JSON Schema 2020-12) for validating documents; `allErrors` to report every failing path. */
export const ajv = new Ajv2020({ allErrors: true, strict: false });

/** Schemas that do not compile are configuration errors, reported with their path. */
export function checkSchemas(settings: {
  collections: Record<string, z.output<typeof collection>>;
}): string[] {
  return Object.entries(settings.collections).flatMap(([name, config]) => {
    if (!config.schema) return [];
    try {
      ajv.compile(config.schema);
      return [];
    } catch (error) {
      return [`collections.${name}.schema: ${(error as Error).message}`];
    }
  });
}
