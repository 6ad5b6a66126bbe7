import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, test } from 'vitest';
import { MalformedError, TresorError } from '../../../src/errors/index.js';
import { parseTdxCollateral } from '../../../src/evidence/tdx/collateral.js';
import { loadIntelSgxRoots, parseTdxQuote, verifyTdxQuote } from '../../../src/evidence/tdx/index.js';
import { thrown } from '../../helpers/errors.js';

const require = createRequire(import.meta.url);
const dcapQvl = require('@phala/dcap-qvl') as { verify: (q: Uint8Array, c: unknown, now: number) => { status: string; advisory_ids: string[] } };

const vec = (f: string) => readFileSync(new URL(`../../vectors/${f}`, import.meta.url));
const QUOTE = new Uint8Array(vec('tdx-dcap-qvl-quote-2025-06.bin'));
const COLLATERAL_TEXT = vec('tdx-dcap-qvl-quote-2025-06.collateral.json').toString('utf8');
const INSIDE = new Date('2025-07-01T00:00:00Z');
const roots = loadIntelSgxRoots();

const err = thrown;
const withCollateral = (text: string, at = INSIDE, quote = QUOTE) => verifyTdxQuote(parseTdxQuote(quote), { at, roots, collateral: parseTdxCollateral(text) });

describe('the real dcap-qvl quote with the collateral its PCCS served', () => {
  test('inside the window: UpToDate, no advisories, FMSPC and evaluation number from the signed TCB info', () => {
    const v = withCollateral(COLLATERAL_TEXT);
    expect(v.tcbStatus).toBe('UpToDate');
    expect(v.tcb).toMatchObject({ status: 'UpToDate', advisoryIds: [], fmspc: 'b0c06f000000', tcbEvaluationDataNumber: 17, qeStatus: 'UpToDate', tdxModuleStatus: 'UpToDate' });
  });
  test('the independent implementation (@phala/dcap-qvl) agrees', () => {
    const r = dcapQvl.verify(QUOTE, JSON.parse(COLLATERAL_TEXT), Math.floor(INSIDE.getTime() / 1000));
    expect(r.status).toBe('UpToDate');
    expect(r.advisory_ids).toEqual([]);
  });
  test('at today\'s time the collateral is stale, with its own code', () => {
    const e = err(() => withCollateral(COLLATERAL_TEXT, new Date('2026-01-01T00:00:00Z')));
    expect(e.code).toBe('ERR_TDX_COLLATERAL_STALE');
  });
});

describe('the real collateral, mutated', () => {
  const collateral = () => JSON.parse(COLLATERAL_TEXT) as Record<string, string>;
  const flipText = (s: string, i: number) => s.slice(0, i) + (s[i] === '1' ? '2' : '1') + s.slice(i + 1);
  test('any changed digit of tcb_info or qe_identity fails its signature', () => {
    for (const [field, code] of [
      ['tcb_info', 'ERR_TDX_COLLATERAL_SIGNATURE'],
      ['qe_identity', 'ERR_TDX_COLLATERAL_SIGNATURE'],
    ] as const) {
      const c = collateral();
      const i = (c[field] as string).indexOf('"tcbEvaluationDataNumber":17') + 27;
      c[field] = flipText(c[field] as string, i);
      expect(err(() => withCollateral(JSON.stringify(c))).code, field).toBe(code);
    }
    const c = collateral();
    c.tcb_info_signature = flipText(c.tcb_info_signature as string, 10);
    expect(err(() => withCollateral(JSON.stringify(c))).code).toBe('ERR_TDX_COLLATERAL_SIGNATURE');
  });
  test('a flipped CRL byte fails its signature; a CRL of the wrong issuer is refused', () => {
    const c = collateral();
    c.pck_crl = flipText(c.pck_crl as string, (c.pck_crl as string).length - 20);
    expect(err(() => withCollateral(JSON.stringify(c))).code).toBe('ERR_CRL_SIGNATURE');
    const swapped = collateral();
    swapped.pck_crl = swapped.root_ca_crl as string;
    expect(err(() => withCollateral(JSON.stringify(swapped))).code).toBe('ERR_CRL_ISSUER');
  });
  test('each stale part has the stale code, one second past nextUpdate', () => {
    expect(err(() => withCollateral(COLLATERAL_TEXT, new Date('2025-07-19T10:00:36Z'))).code).toBe('ERR_TDX_COLLATERAL_STALE');
    expect(withCollateral(COLLATERAL_TEXT, new Date('2025-07-19T10:00:35Z')).tcbStatus).toBe('UpToDate');
    expect(err(() => withCollateral(COLLATERAL_TEXT, new Date('2025-06-19T10:32:26Z'))).code).toBe('ERR_TDX_COLLATERAL_STALE');
  });
  test('collateral for another TEE or FMSPC cannot be used (parse and identity errors name the field)', () => {
    const c = collateral();
    c.tcb_info_issuer_chain = '';
    const e = err(() => parseTdxCollateral(JSON.stringify(c)));
    expect(e).toBeInstanceOf(MalformedError);
    expect(e.message).toContain('tcb_info_issuer_chain');
    expect(err(() => parseTdxCollateral('{')).code).toBe('ERR_TDX_COLLATERAL_MALFORMED');
    expect(err(() => parseTdxCollateral({ ...collateral(), tcb_info: '{"id":"TDX"}' })).message).toContain('tcb_info.version');
  });
});
