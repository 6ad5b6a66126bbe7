import { describe, expect, test } from 'vitest';
import { JsonValueMemo, topLevelMemberText } from '../../src/util/json-member.js';
import { parseJws } from '../../src/util/jws.js';

const M = 'router_attestation';
const b64u = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const HEADER = b64u('{"alg":"ES256","kid":"k"}');
const jwsOf = (payload: string) => `${HEADER}.${b64u(payload)}.${b64u('sig')}`;
const OPTS = { code: 'ERR_T', maxBytes: 1 << 20, what: 'test JWS' };

// A block with what makes lexing hard: escapes, quotes and brackets inside strings, nesting, a unicode character.
const BLOCK = '{ "kind":"snp", "report_b64":"QUJD\\"}]{[,", "chain":["a\\\\", {"x":[1,2,{"y":null}]}], "note":"caf\u00e9 \\u00e9", "n":-1.5e3 }';
const PAYLOAD = `{"jti":"7c9e","iat":1700000000,"${M}":  ${BLOCK} ,"request_digest":"sha256:00","tail":[{"a":"}"}]}`;

/** The payload as parsed (without a memo: the slow path), or its error message. */
function outcome(payload: string, memo?: JsonValueMemo): unknown {
  try {
    const p = parseJws(jwsOf(payload), { ...OPTS, ...(memo ? { reuse: { name: M, memo } } : {}) });
    // The member text reported is the one the parsed document has (the scanner's, for accepted text).
    if (memo) expect(p.member?.text).toBe(topLevelMemberText(payload, M));
    return { payload: JSON.parse(JSON.stringify(p.payload)) as unknown };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

describe('parseJws with a memo for a repeating member: the known block is not parsed again, and nothing else changes', () => {
  test('the second parse takes the memo value (same object), and reports the member text as signed', () => {
    const memo = new JsonValueMemo();
    const a = parseJws(jwsOf(PAYLOAD), { ...OPTS, reuse: { name: M, memo } });
    const b = parseJws(jwsOf(PAYLOAD.replace('7c9e', '7c9f')), { ...OPTS, reuse: { name: M, memo } });
    expect(b.payload[M]).toBe(a.payload[M]);
    expect(b.payload).toEqual({ ...(JSON.parse(PAYLOAD) as object), jti: '7c9f' });
    expect(Object.keys(b.payload)).toEqual(Object.keys(JSON.parse(PAYLOAD) as object));
    expect(b.member).toEqual({ name: M, text: BLOCK });
    expect(Object.isFrozen(b.payload[M])).toBe(true);
    expect(() => ((b.payload[M] as { kind: string }).kind = 'tdx')).toThrow(TypeError);
  });

  test('oracle: every one-character change of the payload, with a warm memo, gives exactly what the slow path gives', () => {
    const memo = new JsonValueMemo();
    parseJws(jwsOf(PAYLOAD), { ...OPTS, reuse: { name: M, memo } });
    const chars = ['"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'n', 'x', '1', '-', '\u00e9', ''];
    let differentBlocks = 0;
    for (let i = 0; i < PAYLOAD.length; i++) {
      for (const c of chars) {
        const mutated = PAYLOAD.slice(0, i) + c + PAYLOAD.slice(i + 1);
        const slow = outcome(mutated);
        expect(outcome(mutated, memo), `char ${i} → ${JSON.stringify(c)}`).toEqual(slow);
        if (topLevelMemberText(mutated, M) !== BLOCK) differentBlocks++;
      }
    }
    expect(differentBlocks).toBeGreaterThan(100);
  });

  test('the cases a scanner could be fooled by: duplicates, an escaped name, trailing text, the block last or alone', () => {
    const memo = new JsonValueMemo();
    parseJws(jwsOf(PAYLOAD), { ...OPTS, reuse: { name: M, memo } });
    const cases = [
      `{"${M}":{"first":1},"z":0,"${M}":${BLOCK}}`,
      `{"${M}":${BLOCK},"z":0,"${M}":{"second":2}}`,
      `{"${M}":${BLOCK},"router\\u005fattestation":{"b":2}}`,
      `{"router\\u005fattestation":{"b":2},"${M}":${BLOCK}}`,
      `{"${M}":${BLOCK}} x`,
      `{"${M}":${BLOCK}}}`,
      `{"${M}":${BLOCK}`,
      `{"${M}":${BLOCK} ${BLOCK}}`,
      `{"${M}":${BLOCK}}`,
      `  {"a":"\\"${M}\\":${BLOCK}", "${M}":${BLOCK} }  `,
      `{"x":{"${M}":${BLOCK}},"${M}":1}`,
      `[{"${M}":${BLOCK}}]`,
      `{"a":"${M}":${BLOCK}}`,
      `{"${M}":${BLOCK},}`,
    ];
    for (const text of cases) expect(outcome(text, memo), text).toEqual(outcome(text));
  });

  test('the memo only ever holds text JSON.parse accepted, and only objects', () => {
    const memo = new JsonValueMemo();
    expect(outcome(`{"${M}":{"a":1} x,"b":2}`, memo)).toMatchObject({ error: 'JWS payload is not JSON' });
    expect(memo.has('{"a":1} x')).toBe(false);
    outcome(`{"${M}":"a string"}`, memo);
    expect(memo.has('"a string"')).toBe(false);
  });
});
