import { describe, expect, it } from 'vitest';
import { encodeKey, encodeValue, prefixEnd, valueAt } from './keys.ts';

const sorted = (values: unknown[]) =>
  [...values].sort((a, b) => Buffer.compare(encodeValue(a), encodeValue(b)));

describe('index key encoding', () => {
  it('orders types null < false < true < numbers < strings < other JSON', () => {
    const values = ['a', 3, true, null, false, -1, { a: 1 }, '', [1]];
    expect(sorted(values)).toEqual([null, false, true, -1, 3, '', 'a', [1], { a: 1 }]);
  });

  it('orders numbers numerically, including negatives, fractions, zeros and extremes', () => {
    const numbers = [
      10,
      -0.5,
      2,
      -1e300,
      0,
      1e-9,
      -3,
      Number.MAX_SAFE_INTEGER,
      -0,
      1.5,
      Number.MIN_SAFE_INTEGER,
    ];
    expect(sorted(numbers)).toEqual([...numbers].sort((a, b) => a - b));
    expect(encodeValue(-0)).toEqual(encodeValue(0));
  });

  it('orders strings by UTF-8 bytes, prefixes first, NUL bytes included', () => {
    const strings = ['b', 'a', 'ab', '', 'a\u0000', 'a\u0000b', 'é', 'z', 'Z', '😀', '\uffff'];
    const byBytes = [...strings].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(sorted(strings)).toEqual(byBytes);
  });

  it('keeps composite keys ordered field by field', () => {
    const keys = [
      ['a', 2],
      ['a', 10],
      ['ab', 1],
      ['a', null],
      [null, 'z'],
    ];
    const order = [...keys].sort((x, y) => Buffer.compare(encodeKey(x), encodeKey(y)));
    expect(order).toEqual([
      [null, 'z'],
      ['a', null],
      ['a', 2],
      ['a', 10],
      ['ab', 1],
    ]);
  });

  it('bounds every key that starts with a prefix', () => {
    const prefix = encodeKey(['a']);
    const end = prefixEnd(prefix)!;
    for (const inside of [
      ['a', 1],
      ['a', 'zzz'],
      ['a', null],
    ]) {
      const key = encodeKey(inside);
      expect(Buffer.compare(key, prefix)).toBeGreaterThanOrEqual(0);
      expect(Buffer.compare(key, end)).toBeLessThan(0);
    }
    for (const outside of [['ab'], ['b'], [1]]) {
      const key = encodeKey(outside);
      expect(Buffer.compare(key, prefix) < 0 || Buffer.compare(key, end) >= 0).toBe(true);
    }
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toBeNull();
  });

  it('reads dotted paths, missing as null', () => {
    const data = { meta: { tag: 'x', deep: { n: 1 } }, list: [1] };
    expect(valueAt(data, 'meta.tag')).toBe('x');
    expect(valueAt(data, 'meta.deep.n')).toBe(1);
    expect(valueAt(data, 'meta.none')).toBeNull();
    expect(valueAt(data, 'list.0')).toBeNull();
  });
});
