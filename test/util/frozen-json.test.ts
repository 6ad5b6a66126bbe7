import { expect, test } from 'vitest';
import { frozenJson, frozenWithJson } from '../../src/util/frozen-json.js';

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
