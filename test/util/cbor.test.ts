import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MalformedError } from '../../src/errors/index.js';
import { CborTag, decodeCbor } from '../../src/util/cbor.js';

const hex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s/g, ''), 'hex'));

describe('strict CBOR decoder', () => {
  test('the subset attestation needs, with integer keys kept', () => {
    const m = decodeCbor(hex('a3 01 38 22 63 6b6579 43 010203 20 f6')) as Map<unknown, unknown>;
    expect(m.get(1)).toBe(-35);
    expect(m.get('key')).toEqual(new Uint8Array([1, 2, 3]));
    expect(m.get(-1)).toBeNull();
    expect(decodeCbor(hex('1b 0000017858d47f65'))).toBe(0x0000017858d47f65);
    expect(decodeCbor(hex('1b ffffffffffffffff'))).toBe(2n ** 64n - 1n);
    expect(decodeCbor(hex('d2 80'), { topLevelTags: [18] })).toEqual(new CborTag(18, []));
  });

  test.each([
    ['indefinite-length array', '9f ff'],
    ['duplicate map key', 'a2 01 01 01 02'],
    ['trailing bytes', '01 02'],
    ['tag not allowed', 'd2 80'],
    ['nested tag', '81 d2 80'],
    ['float', 'fa 3f800000'],
    ['undefined', 'f7'],
    ['truncated byte string', '45 0102'],
    ['invalid UTF-8', '62 c328'],
    ['array as a map key', 'a1 80 01'],
    ['huge length', '5b 00000000ffffffff'],
  ])('rejects %s', (_name, h) => {
    expect(() => decodeCbor(hex(h))).toThrowError(MalformedError);
  });

  test('bounded depth', () => {
    expect(() => decodeCbor(new Uint8Array(Array(40).fill(0x81).concat([0x00])))).toThrowError(/nesting deeper/);
  });

  test('random input only ever raises MalformedError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          decodeCbor(b, { topLevelTags: [18] });
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
