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
    // U+0144 and U+D841 would decode as 'D' and 'A' (Node reads a wide character by its low byte).
    for (const bad of ['ab+c', 'ab/c', 'abc=', 'a', 'abcde', 'ab c', 'ab\nc', 'é', 'QUJ\u0144', 'QUJ\ud841', 'QUJD.QUJD', 'QU=JD', 'QUJD====']) expect(() => fromBase64Url(bad), bad).toThrow(/base64url/);
  });

  test('fuzz: accepts exactly what the alphabet regex and the length rule accept, with Node\'s decode', () => {
    const oracle = (t: string) => /^[A-Za-z0-9_-]*$/.test(t) && t.length % 4 !== 1;
    const valid = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const other = ['+', '/', '=', ' ', '\n', '\t', '\r', '.', '\u0000', '\u007f', '\u0080', '\u00c1', '\u00ff', '\u0141', '\u0144', '\u0161', '\u4e41', '\ud841', '\udc41', '\u{1F600}', '"', '\\', '%', '~'];
    let seed = 20;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    let accepted = 0;
    for (let n = 0; n < 20_000; n++) {
      const len = rnd(n % 10 === 0 ? 200 : 13);
      const chars = Array.from({ length: len }, () => valid[rnd(valid.length)] as string);
      // Mostly one foreign character in an otherwise valid text; sometimes a mix.
      const foreign = rnd(4) === 0 ? rnd(4) : rnd(3) === 0 ? 0 : 1;
      for (let k = 0; k < foreign && len > 0; k++) chars[rnd(len)] = other[rnd(other.length)] as string;
      const t = chars.join('');
      const ok = oracle(t);
      if (ok) {
        accepted++;
        expect(Buffer.from(fromBase64Url(t)).equals(Buffer.from(t, 'base64url')), t).toBe(true);
      } else expect(() => fromBase64Url(t), JSON.stringify(t)).toThrow(/base64url/);
    }
    expect(accepted).toBeGreaterThan(5_000);
  });
});
