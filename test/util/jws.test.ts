import { describe, expect, test } from 'vitest';
import { JsonValueMemo, topLevelMemberText } from '../../src/util/json-member.js';
import { parseJws, type LastHeader } from '../../src/util/jws.js';

const M = 'router_attestation';
const b64u = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const HEADER = b64u('{"alg":"ES256","kid":"k"}');
const jwsOf = (payload: string) => `${HEADER}.${b64u(payload)}.${b64u('sig')}`;
const OPTS = { code: 'ERR_T', maxBytes: 1 << 20, what: 'test JWS' };

// A block with what makes lexing hard: escapes, quotes and brackets inside strings, nesting, a unicode character.
const BLOCK = '{ "kind":"snp", "report_b64":"QUJD\\"}]{[,", "chain":["a\\\\", {"x":[1,2,{"y":null}]}], "note":"caf\u00e9 \\u00e9", "n":-1.5e3 }';
const PAYLOAD = `{"jti":"7c9e","iat":1700000000,"${M}":  ${BLOCK} ,"request_digest":"sha256:00","tail":[{"a":"}"}]}`;
/** As a router writes it: compact, the block last. */
const LAST = `{"jti":"7c9e","iat":1700000000,"tail":[{"a":"}"}],"${M}":${BLOCK}}`;

/** The payload as parsed (without a memo: the slow path), or its error message. */
function outcome(payload: string, memo?: JsonValueMemo): unknown {
  try {
    const p = parseJws(jwsOf(payload), { ...OPTS, ...(memo ? { reuse: { name: M, memo } } : {}) });
    // The member text reported is the one the parsed document has: the scanner's where it answers
    // (the held block found at the end also where an escaped name makes the scanner refuse).
    const scanned = topLevelMemberText(payload, M);
    if (memo && scanned !== undefined) expect(p.member?.text).toBe(scanned);
    if (memo && p.member) expect(JSON.parse(p.member.text)).toEqual((JSON.parse(payload) as Record<string, unknown>)[M]);
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

  test('oracle, the block last as a router writes it (found without a scan): every one-character change gives what the slow path gives', () => {
    const memo = new JsonValueMemo();
    parseJws(jwsOf(LAST), { ...OPTS, reuse: { name: M, memo } });
    const chars = ['"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'n', 'x', '1', ''];
    for (let i = 0; i < LAST.length; i++) {
      for (const c of chars) {
        const mutated = LAST.slice(0, i) + c + LAST.slice(i + 1);
        expect(outcome(mutated, memo), `char ${i} → ${JSON.stringify(c)}`).toEqual(outcome(mutated));
      }
    }
  });

  test('a held block ending the payload is found without a scan, and only as the last top-level member', () => {
    const memo = new JsonValueMemo();
    parseJws(jwsOf(LAST), { ...OPTS, reuse: { name: M, memo } });
    // The scanner refuses any payload with a name written with escapes: a member reported here was found at the end.
    const escapedFirst = `{"router\\u005fattestation":{"b":2},"${M}":${BLOCK}}`;
    expect(topLevelMemberText(escapedFirst, M)).toBeUndefined();
    const p = parseJws(jwsOf(escapedFirst), { ...OPTS, reuse: { name: M, memo } });
    expect(p.member?.text).toBe(BLOCK);
    expect(p.payload).toEqual(JSON.parse(escapedFirst));
    const hostile = [
      // The name's quote escaped: one string `a"router_attestation` holds the block (the `{`/`,` guard).
      `{"a\\"${M}":${BLOCK}}`,
      `{"x":0,"a\\"${M}":${BLOCK}}`,
      // A nested copy, alone or beside a top-level one.
      `{"x":{"${M}":${BLOCK}}}`,
      `{"x":{"${M}":${BLOCK}} }`,
      `{"${M}":{"b":2},"x":{"${M}":${BLOCK}}}`,
      `[{"${M}":${BLOCK}}]`,
      // Inside a string, and after a string left open.
      `{"s":"{\\"${M}\\":${BLOCK}}"}`,
      `{"s":"a,"${M}":${BLOCK}}`,
      // Duplicates: the last one counts.
      `{"${M}":${BLOCK},"${M}":{"b":2}}`,
      `{"${M}":{"b":2},"${M}":${BLOCK}}`,
      `{"${M}":{"b":2},"router\\u005fattestation":${BLOCK}}`,
      `{"${M}":${BLOCK},"router\\u005fattestation":{"b":2}}`,
      // Broken elsewhere, or not an object.
      `{"a":1,,"${M}":${BLOCK}}`,
      `{"a":1 "${M}":${BLOCK}}`,
      `{"${M}":${BLOCK}}}`,
      ` \n{"${M}":${BLOCK}} \n`,
    ];
    for (const text of hostile) expect(outcome(text, memo), text).toEqual(outcome(text));
    expect(outcome(`{"a\\"${M}":${BLOCK}}`, memo)).toEqual({ payload: { [`a"${M}`]: JSON.parse(BLOCK) } });
    // Only a plain name is looked for as written: `"b":1,"c":` here is two members, not one named `b":1,"c`.
    const odd = parseJws(jwsOf(`{"b":1,"c":${BLOCK}}`), { ...OPTS, reuse: { name: 'b":1,"c', memo } });
    expect(odd.payload).toEqual({ b: 1, c: JSON.parse(BLOCK) });
  });

  test('found by its bytes: non-ASCII and invalid UTF-8 around the block decode as the whole payload does', () => {
    const memo = new JsonValueMemo();
    parseJws(jwsOf(LAST), { ...OPTS, reuse: { name: M, memo } });
    const label = Buffer.from(`,"${M}":${BLOCK}}`);
    const heads = [Buffer.from('{"a":"caf\u00e9 \u{1F600}"'), Buffer.from([...Buffer.from('{"a":"x'), 0xc3, ...Buffer.from('"')]), Buffer.from([...Buffer.from('{"a":"'), 0xf0, 0x9f, ...Buffer.from('","b":1')])];
    for (const head of heads) {
      const bytes = Buffer.concat([head, label]);
      const jws = `${HEADER}.${bytes.toString('base64url')}.${b64u('sig')}`;
      const p = parseJws(jws, { ...OPTS, reuse: { name: M, memo } });
      expect(p.payloadText).toBe(bytes.toString('utf8'));
      expect(p.payload).toEqual(JSON.parse(bytes.toString('utf8')));
      expect(p.member?.text).toBe(BLOCK);
    }
  });

  test('a held text that does not survive UTF-8 (a lone surrogate) is never found by its bytes', () => {
    const memo = new JsonValueMemo();
    const lone = '{"a":"\ud800"}';
    memo.set(lone, JSON.parse(lone));
    // Its UTF-8 bytes are those of U+FFFD: a payload carrying them holds "\ufffd", not the lone surrogate.
    const payload = `{"x":1,"${M}":{"a":"\ufffd"}}`;
    expect(outcome(payload, memo)).toEqual({ payload: { x: 1, [M]: { a: '\ufffd' } } });
  });

  test('the memo only ever holds text JSON.parse accepted, and only objects', () => {
    const memo = new JsonValueMemo();
    expect(outcome(`{"${M}":{"a":1} x,"b":2}`, memo)).toMatchObject({ error: 'JWS payload is not JSON' });
    expect(memo.get('{"a":1} x')).toBeUndefined();
    outcome(`{"${M}":"a string"}`, memo);
    expect(memo.get('"a string"')).toBeUndefined();
  });
});

describe('parseJws with the last header held: a repeated header is not decoded again, and nothing else changes', () => {
  /** The header as parsed (no memo: the oracle), or the error message. */
  const headerOutcome = (jws: string, header?: LastHeader): unknown => {
    try {
      return { header: JSON.parse(JSON.stringify(parseJws(jws, { ...OPTS, ...(header ? { header } : {}) }).header)) as unknown };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };

  test('the same header text gives the held value (one object, deep-frozen); another text is parsed and held instead', () => {
    const held: LastHeader = {};
    const withJwk = b64u('{"alg":"ES256","kid":"k","jwk":{"kty":"EC","x":["a"]}}');
    const a = parseJws(`${withJwk}.${b64u('{"a":1}')}.${b64u('sig')}`, { ...OPTS, header: held });
    const b = parseJws(`${withJwk}.${b64u('{"b":2}')}.${b64u('sig')}`, { ...OPTS, header: held });
    expect(b.header).toBe(a.header);
    expect(b.header).toEqual({ alg: 'ES256', kid: 'k', jwk: { kty: 'EC', x: ['a'] } });
    expect(b.payload).toEqual({ b: 2 });
    expect(() => ((b.header as { kid: string }).kid = 'other')).toThrow(TypeError);
    expect(() => ((b.header.jwk as { x: string[] }).x as string[]).push('b')).toThrow(TypeError);
    const rotated = parseJws(`${b64u('{"alg":"ES256","kid":"k2"}')}.${b64u('{"a":1}')}.${b64u('sig')}`, { ...OPTS, header: held });
    expect(rotated.header).toEqual({ alg: 'ES256', kid: 'k2' });
    expect(held.value).toBe(rotated.header);
  });

  test('oracle: every one-character change of the header segment, with the header held, gives exactly what parsing it gives', () => {
    const held: LastHeader = {};
    const payload = `.${b64u('{"a":1}')}.${b64u('sig')}`;
    const chars = ['A', 'z', '0', '-', '_', '+', '/', '=', '.', ' ', '\u00e9', ''];
    let errors = 0;
    for (let i = 0; i < HEADER.length; i++) {
      for (const c of chars) {
        // Warm with the real header, then the mutated one, then the real one again (held or not, the same answers).
        for (const seg of [HEADER, HEADER.slice(0, i) + c + HEADER.slice(i + 1), HEADER]) {
          const want = headerOutcome(seg + payload);
          expect(headerOutcome(seg + payload, held), `char ${i} → ${JSON.stringify(c)}`).toEqual(want);
          if ('error' in (want as object)) errors++;
        }
      }
    }
    expect(errors).toBeGreaterThan(100);
  });

  test('a header that failed is never held', () => {
    const held: LastHeader = {};
    const notJson = b64u('{"alg":');
    expect(headerOutcome(`${notJson}.${b64u('{}')}.${b64u('s')}`, held)).toEqual({ error: 'JWS header is not JSON' });
    expect(held.text).toBeUndefined();
    const array = b64u('["ES256"]');
    expect(headerOutcome(`${array}.${b64u('{}')}.${b64u('s')}`, held)).toEqual({ error: 'expected the JWS header to be a JSON object' });
    expect(held.text).toBeUndefined();
  });
});

describe('parseJws: the verbatim proof (audit/archive.ts writes such a text into JSON unchecked)', () => {
  /** The archive's own check, kept as the oracle: printable ASCII without `"` and `\\`. */
  const VERBATIM_IN_JSON = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
  const base = jwsOf('{"jti":"7c9e","iat":1}');
  const odd = ['"', '\\', ' ', '\n', '\t', '\r', '\u0000', '=', '+', '/', '.', '\u00e9', '\u2028', '\ud800', '\u{1F600}', '%', 'A', 'b', '0', '-', '_'];

  test('set to the text itself for a JWS of three base64url segments, unset when anything was trimmed', () => {
    expect(parseJws(base, OPTS).verbatim).toBe(base);
    for (const t of [` ${base}`, `${base}\n`, `\t${base}\r\n`]) {
      const p = parseJws(t, OPTS);
      expect(p.payload.jti).toBe('7c9e');
      expect(p.verbatim).toBeUndefined();
    }
  });

  test('fuzzed: whenever the proof is given, the text is that JWS and the regex accepts it', () => {
    let proven = 0;
    for (let i = 0; i < 20_000; i++) {
      let t = base;
      for (let k = 1 + Math.floor(Math.random() * 2); k > 0; k--) {
        const at = Math.floor(Math.random() * (t.length + 1));
        const c = odd[Math.floor(Math.random() * odd.length)] as string;
        t = Math.random() < 0.5 ? t.slice(0, at) + c + t.slice(at) : t.slice(0, at) + c + t.slice(at + 1);
      }
      let v: string | undefined;
      try {
        v = parseJws(t, OPTS).verbatim;
      } catch {
        continue;
      }
      if (v === undefined) continue;
      proven++;
      expect(v).toBe(t);
      expect(VERBATIM_IN_JSON.test(t), JSON.stringify(t)).toBe(true);
      expect(t).toMatch(/^[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/);
    }
    expect(proven).toBeGreaterThan(100);
  });
});

