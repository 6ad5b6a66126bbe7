import { beforeAll, describe, expect, test } from 'vitest';
import { MalformedError, TresorError } from '../../../src/errors/index.js';
import { parseTdxQuote, verifyTdxQuote } from '../../../src/evidence/tdx/index.js';
import { createTdxTestPki, mintTdxQuote, type TdxTestPki } from '../../../src/sim/mint/tdx.js';
import { toHex } from '../../../src/util/bytes.js';
import { thrown } from '../../helpers/errors.js';

const NOW = new Date('2026-03-01T00:00:00Z');
let pki: TdxTestPki;
beforeAll(async () => {
  pki = await createTdxTestPki({ now: NOW });
});
const err = thrown;
const reportData = new Uint8Array(64).fill(9);

describe('quote v5 (TDX 1.5 body, type 3)', () => {
  test('parses TEE_TCB_SVN2 and MRSERVICETD and verifies like v4 (the signature covers the body descriptor)', () => {
    const bytes = mintTdxQuote(pki, { reportData, version: 5, mrServiceTd: new Uint8Array(48).fill(0xab) });
    const q = parseTdxQuote(bytes);
    expect(q.version).toBe(5);
    expect(q.bodyType).toBe(3);
    expect(q.signedBytes.length).toBe(48 + 6 + 648);
    expect(toHex(q.body.mrServiceTd as Uint8Array)).toBe('ab'.repeat(48));
    expect(q.body.teeTcbSvn2).toHaveLength(16);
    expect(q.body.reportData).toEqual(reportData);
    const v = verifyTdxQuote(q, { at: NOW, roots: [pki.root] });
    expect(v.tcbStatus).toBe('unknown');
    // One flipped byte of the body descriptor or of MRSERVICETD breaks the quote signature.
    for (const off of [49, 48 + 6 + 620]) {
      const b = new Uint8Array(bytes);
      b[off] = (b[off] as number) ^ 1;
      const e = err(() => verifyTdxQuote(parseTdxQuote(b), { at: NOW, roots: [pki.root] }));
      expect(['ERR_TDX_QUOTE_SIGNATURE', 'ERR_TDX_BODY_TYPE', 'ERR_TDX_LENGTH']).toContain(e.code);
    }
  });
  test('body type 1 (SGX), unknown types and a size that does not fit the type are malformed', () => {
    const bytes = mintTdxQuote(pki, { reportData, version: 5 });
    const set = (off: number, v: number[]) => {
      const b = new Uint8Array(bytes);
      b.set(v, off);
      return b;
    };
    expect(err(() => parseTdxQuote(set(48, [1, 0]))).code).toBe('ERR_TDX_BODY_TYPE');
    expect(err(() => parseTdxQuote(set(48, [4, 0]))).code).toBe('ERR_TDX_BODY_TYPE');
    expect(err(() => parseTdxQuote(set(48, [2, 0]))).code).toBe('ERR_TDX_LENGTH'); // type 2 needs 584 bytes, says 648
    expect(err(() => parseTdxQuote(set(0, [6, 0]))).code).toBe('ERR_TDX_VERSION');
    expect(() => parseTdxQuote(set(48, [1, 0]))).toThrow(MalformedError);
  });
  test('a v5 quote with a TDX 1.0 body (type 2) parses', () => {
    const v4 = mintTdxQuote(pki, { reportData });
    // Re-frame the v4 quote's body as v5 type 2 (its signature then no longer verifies, but the layout parses).
    const le32 = (n: number) => Uint8Array.of(n & 0xff, (n >> 8) & 0xff, 0, 0);
    const v5 = new Uint8Array([...v4.subarray(0, 48), 2, 0, ...le32(584), ...v4.subarray(48)]);
    v5[0] = 5;
    const q = parseTdxQuote(v5);
    expect(q.bodyType).toBe(2);
    expect(q.body.mrServiceTd).toBeUndefined();
    expect(err(() => verifyTdxQuote(q, { at: NOW, roots: [pki.root] })).code).toBe('ERR_TDX_QUOTE_SIGNATURE');
  });
});
