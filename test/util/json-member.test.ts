import { describe, expect, test } from 'vitest';
import { topLevelMemberText } from '../../src/util/json-member.js';

const M = 'router_attestation';

describe('topLevelMemberText: a top-level member as received, without re-serialisation', () => {
  test('the exact bytes, whitespace and key order kept', () => {
    const block = '{ "schema" : "tresor-router-envelope/1",\n  "snp_report_b64":"AAAA" }';
    expect(topLevelMemberText(`{"jti":"x","${M}":   ${block}  , "iat": 1}`, M)).toBe(block);
    expect(topLevelMemberText(`{"${M}":${block}}`, M)).toBe(block);
    expect(topLevelMemberText(`  {"a":[1,{"b":"}"}],"${M}":[1, "]", {"c":null}]}`, M)).toBe('[1, "]", {"c":null}]');
    expect(topLevelMemberText(`{"${M}":"a \\"quoted\\" \\\\"}`, M)).toBe('"a \\"quoted\\" \\\\"');
    expect(topLevelMemberText(`{"${M}":12.5e3}`, M)).toBe('12.5e3');
  });

  test('only a top-level member counts; the last of duplicates wins, as JSON.parse keeps it', () => {
    expect(topLevelMemberText(`{"x":{"${M}":{"nested":true}},"y":"\\"${M}\\":1"}`, M)).toBeUndefined();
    const dup = `{"${M}":{"first":1},"z":0,"${M}":{"second":2}}`;
    expect(topLevelMemberText(dup, M)).toBe('{"second":2}');
    expect(JSON.parse(topLevelMemberText(dup, M) as string)).toEqual(JSON.parse(dup)[M]);
  });

  test('a name written with escapes could hide the member: no answer rather than a wrong one', () => {
    // JSON.parse reads "router\u005fattestation" as router_attestation: the raw text cannot be trusted here.
    const text = `{"${M}":{"a":1},"router\\u005fattestation":{"b":2}}`;
    expect(JSON.parse(text)[M]).toEqual({ b: 2 });
    expect(topLevelMemberText(text, M)).toBeUndefined();
    expect(topLevelMemberText('[1,2]', M)).toBeUndefined();
    expect(topLevelMemberText('{"a":"never closed', M)).toBeUndefined();
  });

  test('agrees with JSON.parse on generated objects', () => {
    let seed = 7;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const value = (d: number): unknown => {
      const k = rnd(d > 2 ? 4 : 7);
      if (k === 0) return rnd(1000) - 500;
      if (k === 1) return ['', 'a"b', '\\', '{[', 'x\\"}'][rnd(5)];
      if (k === 2) return [null, true, false][rnd(3)];
      if (k === 3) return 'plain';
      if (k === 4) return Array.from({ length: rnd(4) }, () => value(d + 1));
      return Object.fromEntries(Array.from({ length: rnd(4) }, (_, i) => [[M, 'k', `"${i}`][rnd(3)] as string, value(d + 1)]));
    };
    for (let n = 0; n < 300; n++) {
      const obj = { a: value(1), [M]: value(1), b: value(1) };
      const text = JSON.stringify(obj, null, rnd(2) ? 2 : undefined);
      expect(JSON.parse(topLevelMemberText(text, M) as string)).toEqual(obj[M]);
    }
  });
});
