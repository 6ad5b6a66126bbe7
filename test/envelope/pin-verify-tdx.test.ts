import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { archivedCollateral, tcbLine } from '../../src/envelope/pin-verify-tdx.js';
import { loadIntelSgxRoots, parseTdxQuote, quoteFmspc, verifyTdxQuote } from '../../src/evidence/tdx/index.js';
import { archivedPin } from '../helpers/pins.js';

const vec = (f: string) => readFileSync(new URL(`../vectors/${f}`, import.meta.url));
const QUOTE = parseTdxQuote(new Uint8Array(vec('tdx-dcap-qvl-quote-2025-06.bin')));
const COLLATERAL = vec('tdx-dcap-qvl-quote-2025-06.collateral.json');
const FMSPC = quoteFmspc(QUOTE.pckChainPem);
// Inside the vector collateral's validity (2025-06-19..2025-07-19).
const AT = new Date('2025-07-01T00:00:00Z');

const pinWith = (parts: Record<string, Buffer>) => archivedPin({ profile: 'near', report: {}, nonce: '00'.repeat(32), leafDerB64: '', at: AT, policy: {}, parts });

describe('the Intel collateral archived with a pin, as the offline collateral source (real Intel collateral)', () => {
  test("the real quote's TCB is evaluated offline from the archived bytes at the pin's time, as the daemon did", () => {
    const source = archivedCollateral(pinWith({ [`tdx_collateral_${FMSPC}`]: COLLATERAL }), { tdxCollateral: 'pccs' });
    const q = verifyTdxQuote(QUOTE, { at: AT, roots: loadIntelSgxRoots(), collateral: source?.(FMSPC) });
    expect(q.tcbStatus).toBe('UpToDate');
    expect(tcbLine(q.tcbStatus, q.tcb?.advisoryIds)).toEqual(['TCB status', 'UpToDate per the archived Intel collateral']);
    expect(tcbLine('OutOfDate', ['INTEL-SA-00837'])).toEqual(['TCB status', 'OutOfDate (advisories INTEL-SA-00837) per the archived Intel collateral']);
    // After the collateral's nextUpdate it is stale, offline exactly as online.
    expect(() => verifyTdxQuote(QUOTE, { at: new Date('2025-08-01T00:00:00Z'), roots: loadIntelSgxRoots(), collateral: source?.(FMSPC) })).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_STALE' }));
  });

  test('none configured and none archived: no source (TCB status unknown); configured but the platform missing: ERR_TDX_COLLATERAL_UNAVAILABLE', () => {
    expect(archivedCollateral(pinWith({}), { tdxCollateral: null })).toBeUndefined();
    expect(tcbLine('unknown', undefined)).toEqual(['TCB status', 'unknown (no Intel collateral was configured, none archived)']);
    const source = archivedCollateral(pinWith({ [`tdx_collateral_${FMSPC}`]: COLLATERAL }), { tdxCollateral: 'dir' });
    expect(() => source?.('00606a000000')).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_UNAVAILABLE' }));
    expect(() => archivedCollateral(pinWith({}), { tdxCollateral: 'file' })?.(FMSPC)).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_UNAVAILABLE' }));
  });

  test('an archived collateral that does not parse: ERR_TDX_COLLATERAL_MALFORMED', () => {
    expect(() => archivedCollateral(pinWith({ [`tdx_collateral_${FMSPC}`]: Buffer.from('{}') }), { tdxCollateral: 'file' })).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_MALFORMED' }));
  });
});
