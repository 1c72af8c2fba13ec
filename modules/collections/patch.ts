import { isJsonObject, type JsonObject, type JsonValue } from './json.ts';

/**
 * JSON Merge Patch (RFC 7396): objects merge recursively, null removes a key, anything else
 * replaces. Merged objects have no prototype, so every key, `__proto__` included, is an own key
 * that is merged like any other (an assignment into `{}` would set the prototype instead).
 */
export function mergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return patch;
  const result: JsonObject = Object.create(null);
  if (isJsonObject(target)) for (const key of Object.keys(target)) result[key] = target[key]!;
  for (const key of Object.keys(patch)) {
    const value = patch[key]!;
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}
