/**
 * Order-preserving, prefix-free encoding of index keys as bytes, so that both
 * databases compare them with plain memcmp (SQLite BLOB, PostgreSQL bytea):
 * null < false < true < numbers (numeric order) < strings (binary UTF-8 order)
 * < other JSON (arrays and objects, by canonical JSON text).
 * A composite key is the concatenation of its fields' encodings.
 */

const TAG = { null: 0x01, false: 0x02, true: 0x03, number: 0x04, string: 0x05, json: 0x06 } as const;

/** Bytes 0x00 inside text become 0x00 0xFF; text ends with 0x00 0x01, below every escaped byte. */
function encodeText(tag: number, text: string): Buffer {
  const raw = Buffer.from(text, 'utf8');
  const out: number[] = [tag];
  for (const byte of raw) {
    out.push(byte);
    if (byte === 0x00) out.push(0xff);
  }
  out.push(0x00, 0x01);
  return Buffer.from(out);
}

/** IEEE-754 big-endian with the sign flipped (positives) or every bit flipped (negatives). */
function encodeNumber(value: number): Buffer {
  const out = Buffer.alloc(9);
  out[0] = TAG.number;
  out.writeDoubleBE(value === 0 ? 0 : value, 1); // -0 sorts as 0
  if (out[1]! & 0x80) {
    for (let i = 1; i < 9; i++) out[i] = ~out[i]! & 0xff;
  } else {
    out[1] = out[1]! | 0x80;
  }
  return out;
}

/** JSON with object keys sorted, so equal values encode equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function encodeValue(value: unknown): Buffer {
  if (value === null || value === undefined) return Buffer.from([TAG.null]);
  if (value === false) return Buffer.from([TAG.false]);
  if (value === true) return Buffer.from([TAG.true]);
  if (typeof value === 'number' && Number.isFinite(value)) return encodeNumber(value);
  if (typeof value === 'string') return encodeText(TAG.string, value);
  return encodeText(TAG.json, canonicalJson(value));
}

export const encodeKey = (values: readonly unknown[]) => Buffer.concat(values.map(encodeValue));

/**
 * The smallest byte string greater than every string that starts with `prefix`
 * (null when there is none: all 0xFF). Encodings are prefix-free, so this bounds
 * "every key whose leading fields equal these".
 */
export function prefixEnd(prefix: Buffer): Buffer | null {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return null;
}

/** The value at a dotted path (`meta.tag`) through own keys only (`constructor` is no inherited member); missing → null. */
export function valueAt(data: unknown, path: string): unknown {
  let current = data;
  for (const part of path.split('.')) {
    if (!current || typeof current !== 'object' || Array.isArray(current) || !Object.hasOwn(current, part))
      return null;
    current = (current as Record<string, unknown>)[part];
  }
  return current === undefined ? null : current;
}
