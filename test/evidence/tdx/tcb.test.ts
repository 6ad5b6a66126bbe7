import { createRequire } from 'node:module';
import { beforeAll, describe, expect, test } from 'vitest';
import { TresorError } from '../../../src/errors/index.js';
import { parseTdxCollateral } from '../../../src/evidence/tdx/collateral.js';
import { evaluateTdxPolicy, parseTdxQuote, verifyTdxQuote } from '../../../src/evidence/tdx/index.js';
import { convergeStatus } from '../../../src/evidence/tdx/tcb.js';
import { mintTdxCollateral, type MintCollateralOptions } from '../../../src/sim/mint/tdx-collateral.js';
import { createTdxTestPki, mintTdxQuote, type MintTdxOptions, type TdxTestPki } from '../../../src/sim/mint/tdx.js';
import { thrown } from '../../helpers/errors.js';

const require = createRequire(import.meta.url);
const { QuoteVerifier } = require('@phala/dcap-qvl') as {
  QuoteVerifier: { newWithRootCa(der: Uint8Array): { verify(q: Uint8Array, c: unknown, now: number): { status: string; advisory_ids: string[] } } };
};

const NOW = new Date('2026-03-01T00:00:00Z');
let pki: TdxTestPki;
beforeAll(async () => {
  pki = await createTdxTestPki({ now: NOW });
});

const err = thrown;
type Levels = { tcb: Record<string, unknown>; tcbStatus: string; advisoryIDs?: string[] }[];
const quote = (o: Partial<MintTdxOptions> = {}) => mintTdxQuote(pki, { reportData: new Uint8Array(64), ...o });
const ours = (q: Uint8Array, c: object) => verifyTdxQuote(parseTdxQuote(q), { at: NOW, roots: [pki.root], collateral: parseTdxCollateral(JSON.stringify(c)) });
/** dcap-qvl's answer, or its refusal as `refused`. */
function theirs(q: Uint8Array, c: object): { status: string; advisories: string[] } | 'refused' {
  try {
    const r = QuoteVerifier.newWithRootCa(Buffer.from(pki.root.der)).verify(q, c, Math.floor(NOW.getTime() / 1000));
    return { status: r.status, advisories: [...r.advisory_ids].sort() };
  } catch {
    return 'refused';
  }
}
const levels = (edit: (l: Levels) => void): Partial<MintCollateralOptions> => ({ editTcbInfo: (info) => edit(info.tcbLevels as Levels) });
const comps = (l: Levels[number], k: string) => l.tcb[k] as { svn: number }[];

describe('TCB level matching, differential against @phala/dcap-qvl on mutated TCB info', () => {
  const cases: [string, Partial<MintCollateralOptions>, string | 'refused'][] = [
    ['as minted', {}, 'UpToDate'],
    ['level 0 needs a higher PCESVN', levels((l) => void ((l[0] as Levels[number]).tcb.pcesvn = 99)), 'OutOfDate'],
    ['level 0 needs a higher SGX component 03', levels((l) => void ((comps(l[0] as Levels[number], 'sgxtcbcomponents')[2] as { svn: number }).svn = 200)), 'OutOfDate'],
    ['level 0 needs a higher TDX component 03 (microcode)', levels((l) => void ((comps(l[0] as Levels[number], 'tdxtcbcomponents')[2] as { svn: number }).svn = 9)), 'OutOfDate'],
    ['level 0 is SWHardeningNeeded with an advisory', levels((l) => Object.assign(l[0] as object, { tcbStatus: 'SWHardeningNeeded', advisoryIDs: ['INTEL-SA-00615'] })), 'SWHardeningNeeded'],
    ['level 0 is ConfigurationAndSWHardeningNeeded', levels((l) => Object.assign(l[0] as object, { tcbStatus: 'ConfigurationAndSWHardeningNeeded', advisoryIDs: ['INTEL-SA-00828'] })), 'ConfigurationAndSWHardeningNeeded'],
    ['no level is reached', levels((l) => l.forEach((x) => (x.tcb.pcesvn = 99))), 'refused'],
    ['the QE identity says ISVSVN 4 is OutOfDate', { editQeIdentity: (q) => void Object.assign((q.tcbLevels as Levels)[0] as object, { tcbStatus: 'OutOfDate' }) }, 'OutOfDate'],
    ['the QE identity pins another MRSIGNER', { editQeIdentity: (q) => void (q.mrsigner = 'AB'.repeat(32)) }, 'refused'],
    ['collateral for another FMSPC', { editTcbInfo: (i) => void (i.fmspc = '00906ED50000') }, 'refused'],
  ];
  for (const [name, edit, expected] of cases) {
    test(name, async () => {
      const q = quote();
      const c = await mintTdxCollateral(pki, { now: NOW, ...edit });
      const them = theirs(q, c);
      if (expected === 'refused') {
        expect(them).toBe('refused');
        expect(() => ours(q, c)).toThrow(TresorError);
        return;
      }
      const v = ours(q, c);
      expect(them).not.toBe('refused');
      expect(v.tcbStatus).toBe(expected);
      expect(them).toEqual({ status: v.tcbStatus, advisories: [...(v.tcb?.advisoryIds ?? [])].sort() });
    });
  }
  test('a Revoked level: dcap-qvl refuses, ours reports Revoked (policy never accepts it)', async () => {
    const q = quote();
    const c = await mintTdxCollateral(pki, { now: NOW, ...levels((l) => void ((l[0] as Levels[number]).tcbStatus = 'Revoked')) });
    expect(theirs(q, c)).toBe('refused');
    expect(ours(q, c).tcbStatus).toBe('Revoked');
  });
  test('a v5 quote (TDX 1.5 body) evaluates like v4, in both implementations', async () => {
    const q = quote({ version: 5 });
    const c = await mintTdxCollateral(pki, { now: NOW });
    expect(ours(q, c).tcbStatus).toBe('UpToDate');
    expect(theirs(q, c)).toEqual({ status: 'UpToDate', advisories: [] });
  });
});

describe('beyond dcap-qvl (Intel QVL rules it does not implement)', () => {
  test('TDX module identity: TEE_TCB_SVN[0] below the TDX_01 UpToDate level makes the platform OutOfDate', async () => {
    const c = await mintTdxCollateral(pki, { now: NOW });
    const v = ours(quote({ teeTcbSvn: Uint8Array.of(3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }), c);
    expect(v.tcb).toMatchObject({ status: 'OutOfDate', platformStatus: 'UpToDate', tdxModuleStatus: 'OutOfDate' });
  });
  test('TDX module identity: an unlisted module version, another MRSIGNERSEAM, an SVN under every level', async () => {
    const c = await mintTdxCollateral(pki, { now: NOW });
    expect(err(() => ours(quote({ teeTcbSvn: Uint8Array.of(5, 7, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }), c)).code).toBe('ERR_TDX_MODULE_IDENTITY');
    expect(err(() => ours(quote({ teeTcbSvn: Uint8Array.of(1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }), c)).code).toBe('ERR_TDX_TCB_LEVEL');
    const other = await mintTdxCollateral(pki, { now: NOW, editTcbInfo: (i) => void Object.assign((i.tdxModuleIdentities as object[])[0] as object, { mrsigner: '11'.repeat(48) }) });
    expect(err(() => ours(quote(), other)).message).toContain('MRSIGNERSEAM');
  });
  test('a revoked PCK certificate is refused through the PCK CRL', async () => {
    const c = await mintTdxCollateral(pki, { now: NOW, revokedPckSerials: [pki.pck.parsed.serialNumber] });
    expect(err(() => ours(quote(), c)).code).toBe('ERR_CHAIN_REVOKED');
  });
  test('Intel status convergence (QE/module OutOfDate over configuration statuses)', () => {
    expect(convergeStatus('ConfigurationNeeded', 'OutOfDate')).toBe('OutOfDateConfigurationNeeded');
    expect(convergeStatus('SWHardeningNeeded', 'OutOfDate')).toBe('OutOfDate');
    expect(convergeStatus('UpToDate', 'Revoked')).toBe('Revoked');
    expect(convergeStatus('SWHardeningNeeded', 'UpToDate')).toBe('SWHardeningNeeded');
  });
  test('the QE identity is checked without collateral too: a self-made QE is refused', () => {
    const self = quote({ qe: { mrSigner: new Uint8Array(32).fill(7) } });
    const e = err(() => verifyTdxQuote(parseTdxQuote(self), { at: NOW, roots: [pki.root] }));
    expect(e.code).toBe('ERR_TDX_QE_IDENTITY');
    expect(e.message).toContain('MRSIGNER');
    expect(err(() => verifyTdxQuote(parseTdxQuote(quote({ qe: { isvProdId: 1 } })), { at: NOW, roots: [pki.root] })).message).toContain('ISVPRODID');
    expect(err(() => verifyTdxQuote(parseTdxQuote(quote({ qe: { attributes: new Uint8Array(16).fill(0x13) } })), { at: NOW, roots: [pki.root] })).message).toContain('ATTRIBUTES');
    expect(err(() => verifyTdxQuote(parseTdxQuote(quote({ qe: { miscSelect: 1 } })), { at: NOW, roots: [pki.root] })).message).toContain('MISCSELECT');
  });
});

describe('policy over the evaluated TCB and the TD attributes', () => {
  const codes = (f: () => unknown) => {
    const e = err(f) as TresorError & { violations?: { code: string; message: string }[] };
    return (e.violations ?? []).map((v) => v.code);
  };
  test('an OutOfDate platform is refused by default, accepted when listed; a blocked advisory refuses it anyway', async () => {
    const c = await mintTdxCollateral(pki, { now: NOW, ...levels((l) => void ((l[0] as Levels[number]).tcb.pcesvn = 99)) });
    const v = ours(quote(), c);
    expect(v.tcb?.advisoryIds).toEqual(['INTEL-SA-00106', 'INTEL-SA-00837']);
    const e = err(() => evaluateTdxPolicy(v, {}));
    expect(e.code).toBe('ERR_POLICY_TDX_TCB_STATUS');
    expect(e.message).toBe('expected TCB status UpToDate, got OutOfDate (advisories INTEL-SA-00106, INTEL-SA-00837)');
    expect(evaluateTdxPolicy(v, { allowedTcbStatuses: ['UpToDate', 'OutOfDate'] })).toMatchObject({ tcbStatus: 'OutOfDate', advisoryIds: ['INTEL-SA-00106', 'INTEL-SA-00837'], tcbEvaluationDataNumber: 17 });
    expect(codes(() => evaluateTdxPolicy(v, { allowedTcbStatuses: ['OutOfDate'], blockedAdvisories: ['intel-sa-00837'], minTcbEvaluationDataNumber: 18 }))).toEqual([
      'ERR_POLICY_TDX_TCB_EVAL_NUMBER',
      'ERR_POLICY_TDX_ADVISORY',
    ]);
  });
  test('Revoked is never accepted, even when listed', async () => {
    const c = await mintTdxCollateral(pki, { now: NOW, ...levels((l) => void ((l[0] as Levels[number]).tcbStatus = 'Revoked')) });
    expect(err(() => evaluateTdxPolicy(ours(quote(), c), { allowedTcbStatuses: ['Revoked' as 'UpToDate'] })).code).toBe('ERR_POLICY_TDX_TCB_STATUS');
  });
  test('TD attributes: reserved bits, SEPT_VE_DISABLE (relaxable), debug (relaxable), MRSERVICETD', () => {
    const at = (bytes: number[]) => verifyTdxQuote(parseTdxQuote(quote({ tdAttributes: Uint8Array.from(bytes) })), { at: NOW, roots: [pki.root] });
    expect(codes(() => evaluateTdxPolicy(at([0, 0, 0, 0x10, 0, 0, 0x01, 0]), {}))).toEqual(['ERR_POLICY_TDX_ATTRIBUTES']);
    expect(codes(() => evaluateTdxPolicy(at([0x02, 0, 0, 0x30, 0, 0, 0, 0]), {}))).toEqual(['ERR_POLICY_TDX_ATTRIBUTES']);
    expect(codes(() => evaluateTdxPolicy(at([0, 0, 0, 0, 0, 0, 0, 0]), {}))).toEqual(['ERR_POLICY_TDX_SEPT_VE']);
    expect(evaluateTdxPolicy(at([0, 0, 0, 0, 0, 0, 0, 0x80]), { allowSeptVe: true }).tcbStatus).toBe('unknown'); // PERFMON is not reserved
    expect(codes(() => evaluateTdxPolicy(at([1, 0, 0, 0x10, 0, 0, 0, 0]), {}))).toEqual(['ERR_POLICY_TDX_DEBUG']);
    expect(evaluateTdxPolicy(at([1, 0, 0, 0xd0, 0, 0, 0, 0]), { allowDebug: true }).tcbStatus).toBe('unknown'); // PKS and KL are not reserved
    const service = verifyTdxQuote(parseTdxQuote(quote({ version: 5, mrServiceTd: new Uint8Array(48).fill(1) })), { at: NOW, roots: [pki.root] });
    expect(codes(() => evaluateTdxPolicy(service, {}))).toEqual(['ERR_POLICY_TDX_MRSERVICETD']);
  });
});
