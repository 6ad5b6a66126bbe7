import { describe, expect, test } from 'vitest';
import { dayOf } from '../../src/audit/format.js';

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
