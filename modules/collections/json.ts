import { PorticoError } from '../../src/index.ts';

/** The deepest nesting of document data, patches and query values; the outermost object or array is level 1. */
export const MAX_JSON_DEPTH = 64;

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export const isJsonObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isPlainObject = (value: object) => {
  const prototype = Object.getPrototypeOf(value);
  return prototype === null || prototype === Object.prototype;
};

const notJson = (what: string) =>
  new PorticoError(
    'BAD_USER_INPUT',
    `${what} must be JSON: null, booleans, finite numbers, strings, arrays and objects.`,
  );

/**
 * A copy of `input` that is JSON and nothing else, for everything that follows (merge patch, JSON
 * Schema, index keys, the stored text) to see one and the same value: its objects have no
 * prototype, so `__proto__`, `constructor` and the like are ordinary own keys, never inherited
 * members nor a prototype to set. Iterative, so any nesting is measured without deep recursion:
 * BAD_USER_INPUT beyond MAX_JSON_DEPTH, or for anything JSON cannot hold.
 */
export function toJson(input: unknown, what: string): JsonValue {
  const pending: { source: object; target: JsonObject | JsonValue[]; depth: number }[] = [];
  const copy = (value: unknown, depth: number): JsonValue => {
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw notJson(what);
      return value === 0 ? 0 : value; // -0 is 0 in JSON text
    }
    if (typeof value !== 'object' || !(Array.isArray(value) || isPlainObject(value))) throw notJson(what);
    if (depth > MAX_JSON_DEPTH) {
      throw new PorticoError('BAD_USER_INPUT', `${what} is nested deeper than ${MAX_JSON_DEPTH} levels.`, {
        limit: MAX_JSON_DEPTH,
      });
    }
    const target: JsonObject | JsonValue[] = Array.isArray(value) ? [] : Object.create(null);
    pending.push({ source: value, target, depth });
    return target;
  };
  const result = copy(input, 1);
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { source, target, depth } = next;
    if (Array.isArray(target)) {
      for (const item of source as unknown[]) target.push(copy(item, depth + 1));
    } else {
      const object = source as Record<string, unknown>;
      for (const key of Object.keys(object)) target[key] = copy(object[key], depth + 1);
    }
  }
  return result;
}

/** `toJson` for what must be an object (document data, a patch). */
export function toJsonObject(input: unknown, what: string): JsonObject {
  const value = toJson(input, what);
  if (!isJsonObject(value)) throw new PorticoError('BAD_USER_INPUT', `${what} must be a JSON object.`);
  return value;
}
