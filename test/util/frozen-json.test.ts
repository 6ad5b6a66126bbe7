import { describe, expect, test } from 'vitest';
import { FlatListMemo, frozenJson, frozenWithJson } from '../../src/util/frozen-json.js';

test('a frozen flat object has its JSON text; it cannot change after', () => {
  const o = frozenWithJson({ a: 'x"\\\n', b: 2, c: true, d: null, e: undefined });
  expect(Object.isFrozen(o)).toBe(true);
  expect(frozenJson(o)).toBe(JSON.stringify(o));
  expect(() => {
    (o as Record<string, unknown>).a = 'changed';
  }).toThrow(TypeError);
  expect(frozenJson(o)).toBe(JSON.stringify(o));
});

test('no text for an object with a nested value (frozen only shallowly), nor for one never frozen here', () => {
  const nested = frozenWithJson({ a: 1, b: { c: 2 } });
  expect(Object.isFrozen(nested)).toBe(true);
  expect(frozenJson(nested)).toBeUndefined();
  expect(frozenJson(Object.freeze({ a: 1 }))).toBeUndefined();
  // Equal content is not the same object: the text is kept by identity.
  frozenWithJson({ a: 1 });
  expect(frozenJson({ a: 1 })).toBeUndefined();
});

/** A class method is not enumerable: only the toJSON check tells such an item apart. */
class WithToJson {
  toJSON() {
    return 'J';
  }
}

describe('FlatListMemo: a kept list answers only for a list JSON writes to the same text', () => {
  const list = () => [{ name: 'signature', result: 'pass', detail: 'ES256' }, { name: 'jti', result: 'pass' }] as object[];

  test('equal member for member: the kept list, frozen, with its text', () => {
    const memo = new FlatListMemo<object>();
    const first = list();
    expect(memo.shared(first)).toBeUndefined();
    expect(memo.keep(first)).toBe(true);
    expect(Object.isFrozen(first) && first.every((c) => Object.isFrozen(c))).toBe(true);
    expect(frozenJson(first)).toBe(JSON.stringify(list()));
    expect(memo.shared(list())).toBe(first);
  });

  test('anything JSON would write otherwise: no answer', () => {
    const memo = new FlatListMemo<object>();
    memo.keep(list());
    const inherited = Object.create({ extra: 1 }) as Record<string, unknown>;
    Object.assign(inherited, { name: 'jti', result: 'pass' });
    const others: object[][] = [
      [{ name: 'signature', result: 'pass', detail: 'ES256' }],
      [{ name: 'signature', result: 'pass', detail: 'ES256' }, { result: 'pass', name: 'jti' }], // member order
      [{ name: 'signature', result: 'pass', detail: 'ES257' }, { name: 'jti', result: 'pass' }],
      [{ name: 'signature', result: 'pass' }, { name: 'jti', result: 'pass' }],
      [{ name: 'signature', result: 'pass', detail: 'ES256', code: undefined }, { name: 'jti', result: 'pass' }],
      [{ name: 'signature', result: 'pass', detail: 'ES256' }, { name: 'jti', result: 'pass', x: {} }],
      [{ name: 'signature', result: 'pass', detail: 'ES256' }, inherited],
      [{ name: 'signature', result: 'pass', detail: 'ES256' }, ['jti', 'pass']],
      [...list(), { name: 'x', result: 'pass' }],
      [{ name: 'signature', result: 'pass', detail: 'ES256' }, Object.assign(new WithToJson(), { name: 'jti', result: 'pass' })],
    ];
    for (const o of others) expect(memo.shared(o), JSON.stringify(o)).toBeUndefined();
  });

  test('a list with a nested value is not kept; at most `max` lists, the newest first', () => {
    const memo = new FlatListMemo<object>(2);
    expect(memo.keep([{ name: 'a', nested: { b: 1 } }])).toBe(false);
    expect(memo.shared([{ name: 'a', nested: { b: 1 } }])).toBeUndefined();
    const [a, b, c] = [[{ n: 'a' }], [{ n: 'b' }], [{ n: 'c' }]];
    for (const l of [a, b, c]) memo.keep(l);
    expect(memo.shared([{ n: 'a' }])).toBeUndefined();
    expect(memo.shared([{ n: 'b' }])).toBe(b);
    expect(memo.shared([{ n: 'c' }])).toBe(c);
  });
});

