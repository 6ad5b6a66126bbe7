import { describe, expect, test } from 'vitest';
import { isoTime } from '../../src/log/iso-time.js';

describe('isoTime: toISOString from a prefix cached per second', () => {
  test('the same text as toISOString (fuzzed: any millisecond of years 0000-9999, runs within one second, outside that range), and an invalid date throws as it does', () => {
    const lo = Date.parse('0000-01-01T00:00:00.000Z');
    const hi = Date.parse('9999-12-31T23:59:59.999Z');
    const times: number[] = [0, -1, 999, 1000, -1000, lo, lo - 1, hi, hi + 1, 8.64e15, -8.64e15];
    for (let i = 0; i < 20_000; i++) {
      const t = lo + Math.floor(Math.random() * (hi - lo));
      times.push(t, t + 1, t - 1, t + 999);
    }
    for (const t of times) expect(isoTime(t)).toBe(new Date(t).toISOString());
    expect(() => isoTime(NaN)).toThrow(RangeError);
  });

  test('its time is toISOString of the moment, across second boundaries and outside years 0-9999', () => {
    const starts = [Date.UTC(2026, 11, 6, 11, 20, 3), Date.UTC(1969, 11, 31, 23, 59, 59), Date.UTC(9999, 11, 31, 23, 59, 59), 0];
    for (const t0 of starts) for (let ms = t0 - 5; ms < t0 + 2010; ms += 7) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    for (const ms of [Date.UTC(10000, 0, 1, 0, 0, 0, 5), -62198755200000 - 1, 8.64e15]) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });
});
