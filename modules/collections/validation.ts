import { type DocumentBody, PorticoError } from '../../src/index.ts';
import { ajv, type CollectionDefinition } from './config.ts';
import { type JsonObject, toJsonObject } from './json.ts';

/** The largest document, as serialized JSON. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

// Printable: no control characters (U+0000–U+001F).
const isPrintableId = (id: string) =>
  id.length >= 1 && id.length <= 128 && ![...id].some((char) => char < ' ');

export function checkId(id: string) {
  if (!isPrintableId(id))
    throw new PorticoError('BAD_USER_INPUT', 'A document id has 1 to 128 printable characters.');
}

/**
 * Size limit and the collection's JSON Schema, on the value that is stored (JSON from `toJson`);
 * returns it with its JSON text. (The store checks the length of its index keys.)
 */
export function validate(definition: CollectionDefinition, data: JsonObject): DocumentBody {
  const text = JSON.stringify(data);
  if (Buffer.byteLength(text) > MAX_DOCUMENT_BYTES) {
    throw new PorticoError(
      'PAYLOAD_TOO_LARGE',
      `A document is at most ${MAX_DOCUMENT_BYTES} bytes of JSON.`,
      {
        limit: MAX_DOCUMENT_BYTES,
      },
    );
  }
  if (definition.schema) {
    const check = ajv.compile(definition.schema);
    if (!check(data)) {
      const errors = (check.errors ?? []).map((error) => ({
        path: error.instancePath || '/',
        message: error.message ?? 'is invalid',
      }));
      throw new PorticoError(
        'VALIDATION_FAILED',
        `The document does not match the schema of "${definition.name}": ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}.`,
        { errors },
      );
    }
  }
  return { text, data };
}

/** A document another gateway writes through this one's store (the store protocol): checked as one of ours. */
export function accept(definition: CollectionDefinition, id: string, data: unknown): DocumentBody {
  checkId(id);
  return validate(definition, toJsonObject(data, 'Document data'));
}
