import { describe, expect, test } from 'vitest';
import { decodeTcb, loadAmdRoots, parseSnpReport, verifySnpReport } from '../../../src/evidence/snp/index.js';
import { readVcekExtensions } from '../../../src/evidence/snp/vcek.js';
import { productFromCpuid } from '../../../src/evidence/snp/roots.js';
import { parseCertificate, parsePemCertificates } from '../../../src/x509/certificate.js';
import { CHAIN_ALGORITHMS, verifyChain } from '../../../src/x509/chain.js';
import { vector } from '../../helpers/vectors.js';

// Real material from other projects (test/vectors/README.md names each source and commit).
const GCP_REPORT = vector('snp-teekit-gcp-milan-v5-attestation.bin');
const [gcpVcek] = parsePemCertificates(Buffer.from(vector('snp-teekit-gcp-milan-v5-vcek.pem')).toString('utf8'), 'vcek');
const turinVcek = parseCertificate(vector('snp-virtee-turin-vcek.der'));
const turinChain = parsePemCertificates(Buffer.from(vector('snp-virtee-turin-ask-ark.pem')).toString('utf8'), 'chain');
const AT = new Date('2026-06-01T00:00:00Z');

describe('a real v5 report (Google Cloud, Milan) with its VCEK from AMD KDS', () => {
  test('parses: version 5, CPUID family 0x19 model 0x01 (Milan), the TCB in the Milan layout', () => {
    const r = parseSnpReport(GCP_REPORT);
    expect(r.VERSION).toBe(5);
    expect(r.CPUID).toMatchObject({ family: 0x19, model: 0x01 });
    expect(productFromCpuid(r.CPUID)).toBe('milan');
    expect(decodeTcb(r.REPORTED_TCB, 'milan')).toEqual({ bootloader: 4, tee: 0, snp: 27, microcode: 222 });
  });
  test('VCEK (productName Milan-B0) → pinned ASK → ARK-Milan and the signature verify; the VCEK SPLs equal REPORTED_TCB', () => {
    expect(readVcekExtensions(gcpVcek!)).toMatchObject({ productName: 'Milan-B0', product: 'milan', tcb: { bootloader: 4, tee: 0, snp: 27, microcode: 222 } });
    const v = verifySnpReport(parseSnpReport(GCP_REPORT), { vcek: gcpVcek!, at: AT });
    expect(v.product).toBe('milan');
  });
  test('the VCEK product name check: a Turin VCEK (real, from AMD KDS) for this Milan report is refused', () => {
    expect(() => verifySnpReport(parseSnpReport(GCP_REPORT), { vcek: turinVcek, at: AT })).toThrow(expect.objectContaining({ code: 'ERR_SNP_PRODUCT_MISMATCH' }));
    // Told it is Turin, the CPUID still says Milan.
    expect(() => verifySnpReport(parseSnpReport(GCP_REPORT), { vcek: turinVcek, chain: turinChain, product: 'turin', at: AT })).toThrow(expect.objectContaining({ code: 'ERR_SNP_PRODUCT_MISMATCH' }));
  });
});

describe('a real Turin VCEK and its ASK/ARK from AMD KDS (virtee/sev)', () => {
  test('the Turin TCB layout: productName Turin, every SPL including FMC, an 8-byte hwID', () => {
    const ext = readVcekExtensions(turinVcek);
    expect(ext).toMatchObject({ productName: 'Turin', product: 'turin' });
    expect(Object.keys(ext.tcb).sort()).toEqual(['bootloader', 'fmc', 'microcode', 'snp', 'tee']);
    expect(ext.hwId?.length).toBe(8);
  });
  test('its chain is the pinned Turin ASK and ARK, and the VCEK verifies to them (RSA-PSS SHA-384); not to the Milan ARK', () => {
    const pinned = loadAmdRoots('turin');
    expect(turinChain.map((c) => c.sha256).sort()).toEqual([pinned.ask.sha256, pinned.ark.sha256].sort());
    const chain = verifyChain(turinVcek, [pinned.ask], { at: AT, anchors: [pinned.ark], label: 'VCEK', signatureAlgorithms: CHAIN_ALGORITHMS.amd });
    expect(chain.path.map((c) => c.subject)).toHaveLength(3);
    expect(() => verifyChain(turinVcek, [loadAmdRoots('milan').ask], { at: AT, anchors: [loadAmdRoots('milan').ark], label: 'VCEK', signatureAlgorithms: CHAIN_ALGORITHMS.amd })).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_CHAIN_/) }));
  });
});
