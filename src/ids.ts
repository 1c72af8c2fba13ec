import { randomBytes } from 'node:crypto';
import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { PorticoError } from './errors.ts';

/**
 * A new row id: 48 bits of milliseconds then `randomBits` random bits, in hex.
 * Ids sort by creation time, so cursors can be plain ids.
 */
export function newId(randomBits: 80 | 128 = 80): string {
  return Date.now().toString(16).padStart(12, '0') + randomBytes(randomBits / 8).toString('hex');
}

/** Decodes a Relay global ID of the given type; BAD_USER_INPUT when it is malformed or of another type. */
export function fromGlobalId(globalId: string, typename: string): string {
  let decoded: { typename: string; id: string } | undefined;
  try {
    decoded = decodeGlobalID(globalId);
  } catch {
    decoded = undefined;
  }
  if (!decoded || decoded.typename !== typename || !decoded.id) {
    throw new PorticoError('BAD_USER_INPUT', `Expected the id of a ${typename}.`);
  }
  return decoded.id;
}

export { encodeGlobalID as toGlobalId };
