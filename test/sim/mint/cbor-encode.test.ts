import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { encodeCbor } from '../../../src/sim/mint/cbor-encode.js';
import { CborTag, decodeCbor, type CborKey, type CborValue } from '../../../src/util/cbor.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('minimal CBOR encoder (preferred serialization)', () => {
  // RFC 8949 Appendix A examples.
  test.each<[CborValue, string]>([
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65535, '19ffff'],
    [65536, '1a00010000'],
    [4294967295, '1affffffff'],
    [4294967296, '1b0000000100000000'],
    [2n ** 64n - 1n, '1bffffffffffffffff'],
    [-1, '20'],
    [-24, '37'],
    [-25, '3818'],
    [-1000, '3903e7'],
    [-(2n ** 64n), '3bffffffffffffffff'],
    [1616018515685, '1b000001784235a6e5'],
    ['', '60'],
    ['IETF', '6449455446'],
    ['\u00fc', '62c3bc'],
    [new Uint8Array([1, 2, 3, 4]), '4401020304'],
    [false, 'f4'],
    [true, 'f5'],
    [null, 'f6'],
    [[1, [2, 3], [4, 5]], '8301820203820405'],
    [new Map<CborKey, CborValue>([[1, -35]]), 'a1013822'],
    [new CborTag(18, []), 'd280'],
  ])('%o → %s', (v, h) => {
    expect(hex(encodeCbor(v))).toBe(h);
  });

  test('maps keep insertion order unless canonical, which sorts by encoded key bytes (RFC 8949 §4.2.1)', () => {
    const m = new Map<CborKey, CborValue>([['bb', 1], [10, 2], ['a', 3], [-1, 4], [100, 5]]);
    expect([...(decodeCbor(encodeCbor(m)) as Map<CborKey, CborValue>).keys()]).toEqual(['bb', 10, 'a', -1, 100]);
    expect([...(decodeCbor(encodeCbor(m, { canonical: true })) as Map<CborKey, CborValue>).keys()]).toEqual([10, 100, -1, 'a', 'bb']);
  });

  test('refuses what it cannot encode exactly', () => {
    expect(() => encodeCbor(1.5)).toThrow(RangeError);
    expect(() => encodeCbor(2n ** 64n)).toThrow(RangeError);
    expect(() => encodeCbor(undefined as unknown as CborValue)).toThrow(TypeError);
  });

  test('round trip through the strict decoder for arbitrary values', () => {
    const key = fc.oneof(fc.integer(), fc.string({ maxLength: 8 }));
    const { value } = fc.letrec<{ value: CborValue }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
        fc.string({ maxLength: 20 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom<CborValue>(true, false, null),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.uniqueArray(fc.tuple(key, tie('value')), { maxLength: 4, selector: ([k]) => k }).map((e) => new Map<CborKey, CborValue>(e)),
      ),
    }));
    fc.assert(
      fc.property(value, (v) => {
        expect(decodeCbor(encodeCbor(v), { maxDepth: 64 })).toEqual(v);
      }),
      { numRuns: 500 },
    );
  });
});
