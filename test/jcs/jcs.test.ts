import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { canonicalize, canonicalBytes, MAX_JCS_DEPTH } from '../../src/jcs/index.js';
import { MalformedError } from '../../src/errors/index.js';
import { sha256Hex } from '../../src/util/bytes.js';

const aci = JSON.parse(readFileSync(new URL('../vectors/aci-v1-current.json', import.meta.url), 'utf8'));

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MalformedError);
    return (e as MalformedError).code;
  }
  return undefined;
}

describe('JCS against the ACI spec vectors (byte-exact)', () => {
  test('workload keyset', () => {
    expect(canonicalize(aci.workload_keyset, { integersOnly: true })).toBe(aci.workload_keyset_jcs);
    expect(`sha256:${sha256Hex(canonicalBytes(aci.workload_keyset))}`).toBe(aci.workload_keyset_digest);
  });
  test('receipt signing input (document minus signature)', () => {
    const { signature: _s, ...rest } = aci.receipt.document;
    expect(canonicalize(rest, { integersOnly: true })).toBe(aci.receipt.signing_input_jcs);
    expect(sha256Hex(canonicalBytes(rest))).toBe(aci.receipt.signing_input_sha256);
  });
  test('attested session document and its id', () => {
    expect(canonicalize(aci.session.document)).toBe(aci.session.jcs);
    expect(sha256Hex(canonicalBytes(aci.session.document))).toBe(aci.session.session_id);
  });
  test('attestation statements', () => {
    const d = aci.workload_keyset_digest;
    const st = aci.attestation_statement;
    expect(canonicalize({ purpose: 'aci.report_data.v1', nonce: st.nonce, keyset_digest: d })).toBe(st.statement);
    expect(canonicalize({ purpose: 'aci.report_data.v1', nonce: null, keyset_digest: d })).toBe(st.statement_nonce_null);
  });
});

describe('RFC 8785 examples', () => {
  // §3.2.2.3 / Appendix B: IEEE-754 bit patterns and their canonical text.
  const numbers: [string, string][] = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  test.each(numbers)('IEEE-754 %s serialises as %s', (bits, text) => {
    const n = Buffer.from(bits, 'hex').readDoubleBE(0);
    expect(canonicalize(n)).toBe(text);
  });
  test.each([NaN, Infinity, -Infinity])('%s is rejected', (n) => {
    expect(code(() => canonicalize({ a: n }))).toBe('ERR_JCS_UNSUPPORTED_VALUE');
  });
  test('§3.2.3 property sorting by UTF-16 code units', () => {
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    const out = canonicalize(input);
    const keys = [...out.matchAll(/"((?:[^"\\]|\\.)*)":/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
    expect(keys).toEqual(['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
  });
  test('§3.2.4 canonicalisation example', () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
    );
    expect(canonicalize(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });
});

describe('values outside I-JSON are refused, never silently changed', () => {
  test.each<[string, unknown]>([
    ['undefined member', { a: undefined }],
    ['function', { f: () => 1 }],
    ['bigint', { n: 1n }],
    ['symbol', [Symbol('x')]],
    ['Date (would go through toJSON)', { d: new Date(0) }],
    ['class instance', { m: new Map() }],
    ['lone high surrogate in a string', { s: '\ud800x' }],
    ['lone low surrogate in a key', { '\udc00': 1 }],
  ])('%s', (_name, value) => {
    expect(code(() => canonicalize(value))).toBe('ERR_JCS_UNSUPPORTED_VALUE');
  });
  test('floats are refused where the spec wants integers only', () => {
    expect(code(() => canonicalize({ served_at: 1.5 }, { integersOnly: true }))).toBe('ERR_JCS_NOT_INTEGER');
    expect(code(() => canonicalize([2 ** 53], { integersOnly: true }))).toBe('ERR_JCS_NOT_INTEGER');
    expect(canonicalize({ served_at: 1.5 })).toBe('{"served_at":1.5}');
  });
  test('nesting is bounded', () => {
    let deep: unknown = 1;
    for (let i = 0; i <= MAX_JCS_DEPTH; i++) deep = [deep];
    expect(code(() => canonicalize(deep))).toBe('ERR_JCS_TOO_DEEP');
  });
  test('a valid surrogate pair is kept as is', () => {
    expect(canonicalize('\ud83d\ude00')).toBe('"\ud83d\ude00"');
  });
});

describe('properties', () => {
  const json = fc.jsonValue({ maxDepth: 4 });
  test('canonical text parses back to the same value (JSON round trip), and is a fixed point', () => {
    fc.assert(
      fc.property(json, (v) => {
        const c = canonicalize(v);
        const back = JSON.parse(c) as unknown;
        expect(canonicalize(back)).toBe(c);
        expect(back).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 300 },
    );
  });
  test('independent of member order, and members come out sorted by UTF-16 code units', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.integer()), fc.integer(), (obj, seed) => {
        const entries = Object.entries(obj);
        const shuffled = [...entries].sort((a, b) => ((a[0].length * 31 + seed) % 7) - ((b[0].length * 31 + seed) % 7));
        const c = canonicalize(Object.fromEntries(shuffled));
        expect(c).toBe(canonicalize(obj));
        const keys = Object.keys(obj);
        // Re-derive the order by comparing UTF-16 code units explicitly.
        const byUnits = [...keys].sort((a, b) => {
          for (let i = 0; i < Math.min(a.length, b.length); i++) {
            const d = a.charCodeAt(i) - b.charCodeAt(i);
            if (d !== 0) return d;
          }
          return a.length - b.length;
        });
        expect(c).toBe(`{${byUnits.map((k) => `${JSON.stringify(k)}:${String(obj[k])}`).join(',')}}`);
      }),
      { numRuns: 200 },
    );
  });
  test('finite doubles serialise like ECMAScript Number.prototype.toString (RFC 8785 §3.2.2.3)', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        expect(canonicalize(d)).toBe(Object.is(d, -0) ? '0' : String(d));
        expect(Number(canonicalize(d))).toBe(d === 0 ? 0 : d);
      }),
      { numRuns: 500 },
    );
  });
});
