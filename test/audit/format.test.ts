import { describe, expect, test } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { dayOf, lineHash } from '../../src/audit/format.js';

const slow = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, '');

describe('dayOf: the UTC day of a time, its bounds kept between calls', () => {
  test('the same answer as formatting every time, across midnights, backwards in time and far away', () => {
    const midnight = Date.UTC(2026, 11, 6);
    const times = [midnight - 1, midnight, midnight + 1, midnight + 86_399_999, midnight + 86_400_000, midnight - 1, midnight + 5, 0, -1, -86_400_001, Date.UTC(2099, 0, 1) - 1, Date.UTC(1969, 11, 31, 23, 59), midnight];
    for (let i = 0; i < 500; i++) times.push(midnight + Math.round((Math.random() - 0.5) * 10 * 86_400_000));
    for (const t of times) expect(dayOf(new Date(t)), new Date(t).toISOString()).toBe(slow(new Date(t)));
  });

  test('an invalid date throws as before', () => {
    expect(() => dayOf(new Date(Number.NaN))).toThrow(RangeError);
  });
});

describe('lineHash: SHA-256 of the line in one call', () => {
  test('the same hex as a Hash object over the same text or bytes, whatever the characters', () => {
    const oracle = (l: string | Uint8Array) => createHash('sha256').update(l).digest('hex');
    const chars = ['a', '"', '\\', '\n', 'caf\u00e9', '\u2028', '\u{1F600}', '\ud800', '\udfff', '\u0000', '\u00ff'];
    const lines = ['', 'x'.repeat(64 * 1024)];
    for (let i = 0; i < 500; i++) lines.push(Array.from({ length: Math.floor(Math.random() * 40) }, () => chars[Math.floor(Math.random() * chars.length)]).join(''));
    for (const l of lines) {
      expect(lineHash(l)).toBe(oracle(l));
      expect(lineHash(Buffer.from(l))).toBe(oracle(Buffer.from(l)));
    }
    const bytes = randomBytes(4096);
    expect(lineHash(bytes.subarray(100, 3000))).toBe(oracle(bytes.subarray(100, 3000)));
  });
});
