import { expect, test } from 'vitest';
import { boundedMemo } from '../../src/util/memo.js';

test('boundedMemo: each value worked out once, undefined and null results included; never more than max kept', () => {
  const calls: string[] = [];
  const memo = boundedMemo(2, (k) => {
    calls.push(k);
    return k === 'none' ? undefined : k === 'bad' ? null : k.length;
  });
  expect([memo('ab'), memo('ab'), memo('none'), memo('none')]).toEqual([2, 2, undefined, undefined]);
  expect(calls).toEqual(['ab', 'none']);
  // Full: the next new value empties it, so 'ab' is worked out again.
  expect(memo('bad')).toBeNull();
  expect(memo('ab')).toBe(2);
  expect(calls).toEqual(['ab', 'none', 'bad', 'ab']);
});
