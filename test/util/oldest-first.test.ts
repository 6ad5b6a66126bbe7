import { describe, expect, it } from 'vitest';
import { OldestFirst } from '../../src/util/oldest-first.js';

/** The obvious eviction, as the oracle: a fresh walk from the first key each time. */
function naiveTrim(map: Map<number, unknown>, max: number): void {
  while (map.size > max) map.delete(map.keys().next().value as number);
}

describe('OldestFirst', () => {
  it('evicts exactly what a fresh walk would, across sets, re-sets and deletes by others', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const a = new Map<number, unknown>();
    const b = new Map<number, unknown>();
    const oldest = new OldestFirst(a);
    for (let i = 0; i < 20_000; i++) {
      const op = rnd(10);
      const k = rnd(400);
      if (op < 6) {
        // set, moving an existing key to the end (as the verdict store does)
        for (const m of [a, b]) {
          m.delete(k);
          m.set(k, i);
        }
      } else if (op < 8) for (const m of [a, b]) m.delete(k);
      else if (op === 8) for (const m of [a, b]) m.clear();
      const max = 50 + rnd(100);
      oldest.trim(max);
      naiveTrim(b, max);
      expect([...a.keys()]).toEqual([...b.keys()]);
    }
  });

  it('walks the keys once for many evictions, not once per eviction', () => {
    const map = new Map<number, number>();
    const oldest = new OldestFirst(map);
    let walks = 0;
    const keys = map.keys.bind(map);
    map.keys = () => {
      walks++;
      return keys();
    };
    for (let i = 0; i < 10_000; i++) {
      map.set(i, i);
      oldest.trim(1_000);
    }
    expect(map.size).toBe(1_000);
    expect([...map.keys()][0]).toBe(9_000);
    expect(walks).toBeLessThan(5);
  });
});
