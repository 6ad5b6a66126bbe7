import { describe, expect, test } from 'vitest';
import { decodeTcb, evaluateSnpPolicy, loadAmdRoots, parseSnpReport, verifySnpReport } from '../../../src/evidence/snp/index.js';
import { readVcekExtensions } from '../../../src/evidence/snp/vcek.js';
import { parseCertificate, parsePemCertificates, type Certificate } from '../../../src/x509/certificate.js';
import { vector } from '../../helpers/vectors.js';

// A real VLEK-signed report (SIGNING_KEY 1, a cloud provider's Milan host, the kind AWS EC2 SNP instances produce), its
// VLEK from AMD KDS and AMD's Milan ASK/ARK/ASVK, all from confidential-containers/trustee (test/vectors/README.md).
// The VLEK was valid 2024-12-10..2025-12-10: verified inside that window, and refused as expired after it.
const REPORT = vector('snp-trustee-milan-vlek-attestation.bin');
const vlek = parseCertificate(vector('snp-trustee-milan-vlek.der'));
const amd = parsePemCertificates(Buffer.from(vector('snp-trustee-milan-ask-ark-asvk.pem')).toString('utf8'), 'chain');
const cn = (c: Certificate) => /CN=([^,]+)/.exec(c.subject)?.[1];
const asvk = amd.find((c) => cn(c) === 'SEV-VLEK-Milan') as Certificate;
const ask = amd.find((c) => cn(c) === 'SEV-Milan') as Certificate;
const AT = new Date('2025-06-01T00:00:00Z');

describe('a real VLEK-signed report verified through the ASVK chain', () => {
  test('parses as VLEK-signed, v3, Milan CPUID; the VLEK carries the Milan SPLs equal to REPORTED_TCB', () => {
    const r = parseSnpReport(REPORT);
    expect(r).toMatchObject({ VERSION: 3, SIGNING_KEY: 'vlek', VMPL: 1, CPUID: { family: 0x19, model: 0x01 } });
    expect(readVcekExtensions(vlek)).toMatchObject({ productName: 'Milan', product: 'milan', tcb: { bootloader: 4, tee: 0, snp: 24, microcode: 217 } });
    expect(decodeTcb(r.REPORTED_TCB, 'milan')).toEqual({ bootloader: 4, tee: 0, snp: 24, microcode: 217 });
  });
  test('VLEK → ASVK (SEV-VLEK-Milan) → the pinned ARK-Milan and the report signature verify', () => {
    const v = verifySnpReport(parseSnpReport(REPORT), { vcek: vlek, chain: [asvk], at: AT });
    expect(v.chain.map(cn)).toEqual(['SEV-VLEK', 'SEV-VLEK-Milan', 'ARK-Milan']);
    expect(v.chain[2]?.sha256).toBe(loadAmdRoots('milan').ark.sha256);
  });
  test('the ASK does not vouch for a VLEK: without the ASVK, or with the ASK in its place, the chain fails', () => {
    expect(() => verifySnpReport(parseSnpReport(REPORT), { vcek: vlek, at: AT })).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_CHAIN_/) }));
    expect(() => verifySnpReport(parseSnpReport(REPORT), { vcek: vlek, chain: [ask], at: AT })).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_CHAIN_/) }));
  });
  test('after the VLEK expired (2025-12-10) it is refused', () => {
    expect(() => verifySnpReport(parseSnpReport(REPORT), { vcek: vlek, chain: [asvk], at: new Date('2026-01-01T00:00:00Z') })).toThrow(expect.objectContaining({ code: 'ERR_CHAIN_EXPIRED' }));
  });
  test('a flipped REPORT_DATA bit fails the signature; a real VCEK (another key) does not verify it', () => {
    const bad = new Uint8Array(REPORT);
    bad[0x50] = (bad[0x50] as number) ^ 1;
    expect(() => verifySnpReport(parseSnpReport(bad), { vcek: vlek, chain: [asvk], at: AT })).toThrow(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE' }));
    const vcek = parsePemCertificates(Buffer.from(vector('snp-routex-milan-v3-vcek-chain.pem')).toString('utf8'), 'vcek')[0] as Certificate;
    expect(() => verifySnpReport(parseSnpReport(REPORT), { vcek, at: AT })).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_SNP_(VCEK_TCB_MISMATCH|SIGNATURE)$/) }));
  });
  test('what policy says on it: VMPL 1 and CURRENT_TCB ≠ COMMITTED_TCB are refused by default, accepted when relaxed', () => {
    const v = verifySnpReport(parseSnpReport(REPORT), { vcek: vlek, chain: [asvk], at: AT });
    expect(() => evaluateSnpPolicy(v, {})).toThrow(expect.objectContaining({ code: 'ERR_POLICY_VMPL' }));
    expect(() => evaluateSnpPolicy(v, { vmpl: 1 })).toThrow(expect.objectContaining({ code: 'ERR_POLICY_SNP_PROVISIONAL' }));
    expect(() => evaluateSnpPolicy(v, { vmpl: 1, allowProvisionalFirmware: true, requireTsme: true })).not.toThrow();
  });
});
