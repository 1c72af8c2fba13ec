import { randomBytes } from 'node:crypto';
import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { PorticoError } from './errors.ts';
import { isStorableText } from './text.ts';

let lastTime = 0;
let lastRandom = 0n;
const hexTime = (ms: number) => ms.toString(16).padStart(12, '0');

/**
 * A new row id: 48 bits of milliseconds then 80 random bits, 32 hex digits. Ids sort
 * by creation time, so cursors can be plain ids; within one millisecond the random
 * part counts up (as ULIDs do), so one process's ids never tie or reorder.
 * `randomBits: 128` makes a fully random suffix instead (session ids: unguessable).
 */
export function newId(randomBits: 80 | 128 = 80): string {
  const now = Date.now();
  if (randomBits === 128) return hexTime(now) + randomBytes(16).toString('hex');
  if (now > lastTime) {
    lastTime = now;
    lastRandom = BigInt(`0x${randomBytes(10).toString('hex')}`);
  } else {
    lastRandom += 1n;
  }
  return hexTime(lastTime) + lastRandom.toString(16).padStart(20, '0').slice(-20);
}

/** Decodes a Relay global ID; undefined when it is malformed or holds text no database stores. */
function decoded(globalId: string): { typename: string; id: string } | undefined {
  try {
    const parts = decodeGlobalID(globalId);
    return isStorableText(parts.id) ? parts : undefined;
  } catch {
    return undefined;
  }
}

/** Decodes a Relay global ID of the given type; BAD_USER_INPUT when it is malformed or of another type. */
export function fromGlobalId(globalId: string, typename: string): string {
  const parts = decoded(globalId);
  if (!parts || parts.typename !== typename || !parts.id) {
    throw new PorticoError('BAD_USER_INPUT', `Expected the id of a ${typename}.`);
  }
  return parts.id;
}

/** `Query.node`'s decoder: BAD_USER_INPUT, not a bug, for an id that is no global id. */
export function decodeNodeId(globalId: string): { typename: string; id: string } {
  const parts = decoded(globalId);
  if (!parts) throw new PorticoError('BAD_USER_INPUT', 'Expected the id of a node.');
  return parts;
}

export { encodeGlobalID as toGlobalId };
