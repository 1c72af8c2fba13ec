import { type OutputUnit, type Schema, Validator } from '@cfworker/json-schema';

/**
 * What the Data screens read from documents and their collection's JSON Schema: the table's
 * columns, a new document's template and the check as you type. The check uses
 * @cfworker/json-schema because it needs no eval (the console's CSP forbids it); the server's
 * own check stays the authority.
 */

export type JsonObject = Record<string, unknown>;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The value at a dotted path ("meta.tag"), as the server's indexes read it. */
export function valueAt(data: JsonObject, path: string): unknown {
  let value: unknown = data;
  for (const key of path.split('.')) {
    if (!isObject(value)) return undefined;
    value = value[key];
  }
  return value;
}

const declaredProperties = (schema: JsonObject | null | undefined): string[] => {
  if (!schema) return [];
  const properties = isObject(schema.properties) ? Object.keys(schema.properties) : [];
  const required = Array.isArray(schema.required)
    ? schema.required.filter((name): name is string => typeof name === 'string')
    : [];
  return [...new Set([...properties, ...required])];
};

/** At most this many field columns: wider documents keep the rest in their JSON. */
export const MAX_FIELD_COLUMNS = 8;

/**
 * The fields a page of documents is shown by: the index fields first (what queries and sorts
 * use), then the schema's properties, then the other top-level fields in the order first seen.
 * `hidden` counts those beyond the cap.
 */
export function fieldColumns(
  indexFields: readonly string[],
  schema: JsonObject | null | undefined,
  documents: readonly JsonObject[],
): { fields: string[]; hidden: number } {
  const all = new Set([...indexFields, ...declaredProperties(schema)]);
  for (const data of documents) for (const key of Object.keys(data)) all.add(key);
  const fields = [...all];
  return {
    fields: fields.slice(0, MAX_FIELD_COLUMNS),
    hidden: Math.max(0, fields.length - MAX_FIELD_COLUMNS),
  };
}

/** One value in a table cell: text as is, anything else as compact JSON; cut at `limit` characters. */
export function cellText(value: unknown, limit = 60): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/** A value that fits a property's schema before anything is typed: its const, default, first enum value or type's zero. */
function placeholder(schema: unknown): unknown {
  if (!isObject(schema)) return null;
  if ('const' in schema) return schema.const;
  if ('default' in schema) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  const type = types.find((name) => name !== 'null') ?? types[0];
  switch (type) {
    case 'string':
      return '';
    case 'number':
    case 'integer':
      return 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return null;
  }
}

/**
 * The text a new document starts from: the schema's declared and required properties with
 * typed placeholders, or without them the index fields (nested paths as nested objects) empty.
 */
export function templateOf(schema: JsonObject | null | undefined, indexFields: readonly string[]): string {
  const template: JsonObject = {};
  const declared = declaredProperties(schema);
  if (declared.length > 0) {
    const properties = isObject(schema?.properties) ? schema.properties : {};
    for (const name of declared) template[name] = placeholder(properties[name]);
  } else {
    for (const path of indexFields) {
      const keys = path.split('.');
      let parent = template;
      for (const key of keys.slice(0, -1)) {
        if (!isObject(parent[key])) parent[key] = {};
        parent = parent[key] as JsonObject;
      }
      parent[keys.at(-1)!] = '';
    }
  }
  return Object.keys(template).length > 0 ? JSON.stringify(template, null, 2) : '{\n  \n}';
}

export interface TextProblem {
  /** A JSON pointer into the document ("" is the document itself); absent when the text is not JSON. */
  pointer?: string;
  message: string;
}

/** Keywords whose failure only says a subschema failed: that subschema's own error says why. */
const SUMMARIES = new Set(['properties', 'patternProperties', 'items', 'prefixItems', 'allOf', '$ref']);

const uncheckable = (error: unknown) =>
  `The schema cannot be checked here (${(error as Error).message}); the server checks it on save.`;

/** A validator for the schema, or why this browser cannot check it (the server still does). */
export function validatorOf(schema: JsonObject): Validator | string {
  try {
    return new Validator(schema as Schema, '2020-12', false);
  } catch (error) {
    return uncheckable(error);
  }
}

/** What is wrong with the editor's text: not JSON, not an object, or what the schema refuses. */
export function problemsOf(text: string, validator: Validator | null): TextProblem[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    return [{ message: `Not valid JSON: ${(error as Error).message}` }];
  }
  if (!isObject(data)) return [{ pointer: '', message: 'A document is a JSON object: { … }.' }];
  if (!validator) return [];
  let errors: OutputUnit[];
  try {
    errors = validator.validate(data).errors;
  } catch (error) {
    return [{ message: uncheckable(error) }];
  }
  return errors
    .filter((error) => !SUMMARIES.has(error.keyword))
    .map((error) => ({
      pointer: decodeURIComponent(error.instanceLocation.replace(/^#/, '')),
      message: error.error,
    }));
}
