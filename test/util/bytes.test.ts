import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { fromBase64Url } from '../../src/util/bytes.js';

describe('fromBase64Url: the decoded bytes, owned', () => {
  test('large and small decodes equal the bytes encoded, in a plain Uint8Array that shares no pool', () => {
    for (const n of [0, 1, 2, 3, 32, 64, 3000, 3100, 4500, 20_000]) {
      const bytes = randomBytes(n);
      const out = fromBase64Url(bytes.toString('base64url'));
      expect(Buffer.from(out).equals(bytes)).toBe(true);
      expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype);
      // Its ArrayBuffer holds these bytes only: never Node's shared 8 KB pool.
      expect(out.buffer.byteLength).toBe(n);
    }
  });

  test('still strict: anything outside the base64url alphabet, or an impossible length, is refused', () => {
    for (const bad of ['ab+c', 'ab/c', 'abc=', 'a', 'abcde', 'ab c', 'ab\nc', 'é']) expect(() => fromBase64Url(bad), bad).toThrow(/base64url/);
  });
});
