import { describe, expect, test } from 'vitest';
import { decodeTcb, evaluateSnpPolicy, loadAmdRoots, parseSnpReport, verifySnpReport, type Product } from '../../../src/evidence/snp/index.js';
import { productFromCpuid } from '../../../src/evidence/snp/roots.js';
import { readVcekExtensions } from '../../../src/evidence/snp/vcek.js';
import { toHex } from '../../../src/util/bytes.js';
import { parseCertificate, parsePemCertificates, type Certificate } from '../../../src/x509/certificate.js';
import { vector } from '../../helpers/vectors.js';

// Real Genoa, Turin and Milan v3/v5 reports with the VCEKs AMD KDS issued for them (test/vectors/README.md names
// each source, commit and licence). Every one verifies end to end to the pinned ASK/ARK.
const AT = new Date('2026-06-01T00:00:00Z');
const pem = (name: string) => parsePemCertificates(Buffer.from(vector(name)).toString('utf8'), name);

interface Real {
  name: string;
  report: Uint8Array;
  /** VCEK first, then what the source supplied with it (ASK, ARK). */
  certs: Certificate[];
  version: number;
  cpuid: { family: number; model: number; stepping: number };
  product: Product;
  productName: string;
  tcb: Record<string, number>;
  tsme: boolean;
}

const REAL: Real[] = [
  { name: 'Genoa v5', report: vector('snp-routex-genoa-v5-attestation.bin'), certs: pem('snp-routex-genoa-v5-vcek-chain.pem'), version: 5, cpuid: { family: 0x19, model: 0x11, stepping: 1 }, product: 'genoa', productName: 'Genoa', tcb: { bootloader: 10, tee: 0, snp: 27, microcode: 88 }, tsme: false },
  { name: 'Genoa v3', report: vector('snp-routex-genoa-v3-attestation.bin'), certs: pem('snp-routex-genoa-v3-vcek-chain.pem'), version: 3, cpuid: { family: 0x19, model: 0x11, stepping: 1 }, product: 'genoa', productName: 'Genoa', tcb: { bootloader: 9, tee: 0, snp: 23, microcode: 72 }, tsme: false },
  { name: 'Milan v3', report: vector('snp-routex-milan-v3-attestation.bin'), certs: pem('snp-routex-milan-v3-vcek-chain.pem'), version: 3, cpuid: { family: 0x19, model: 0x01, stepping: 1 }, product: 'milan', productName: 'Milan-B0', tcb: { bootloader: 4, tee: 0, snp: 24, microcode: 219 }, tsme: false },
  { name: 'Turin v5', report: vector('snp-oak-turin-v5-attestation.bin'), certs: [parseCertificate(vector('snp-oak-turin-vcek.der'))], version: 5, cpuid: { family: 0x1a, model: 0x02, stepping: 1 }, product: 'turin', productName: 'Turin', tcb: { fmc: 0, bootloader: 1, tee: 0, snp: 2, microcode: 71 }, tsme: true },
];

const verify = (r: Real, report = r.report, extra: { product?: Product; vcek?: Certificate } = {}) =>
  verifySnpReport(parseSnpReport(report), { vcek: extra.vcek ?? (r.certs[0] as Certificate), chain: r.certs.slice(1), ...(extra.product ? { product: extra.product } : {}), at: AT });

describe.each(REAL)('a real $name report with its VCEK from AMD KDS', (r) => {
  test('parses: version, CPUID family/model, the product and its TCB layout', () => {
    const p = parseSnpReport(r.report);
    expect(p.VERSION).toBe(r.version);
    expect(p.CPUID).toEqual(r.cpuid);
    expect(productFromCpuid(p.CPUID)).toBe(r.product);
    expect(decodeTcb(p.REPORTED_TCB, r.product)).toEqual(r.tcb);
    expect(readVcekExtensions(r.certs[0] as Certificate)).toMatchObject({ productName: r.productName, product: r.product, tcb: r.tcb });
  });
  test('the chain to the pinned ASK/ARK and the signature verify; the default policy accepts it', () => {
    const v = verify(r);
    expect(v.product).toBe(r.product);
    expect(v.chain.at(-1)?.sha256).toBe(loadAmdRoots(r.product).ark.sha256);
    expect(() => evaluateSnpPolicy(v, {})).not.toThrow();
  });
  test('policy on real platform data: SMT refusable, TSME as the platform reports it, debug off', () => {
    const v = verify(r);
    expect(v.policy.debug).toBe(false);
    expect(() => evaluateSnpPolicy(v, { allowSmt: false })).toThrow(expect.objectContaining({ code: 'ERR_POLICY_SNP_SMT' }));
    if (r.tsme) expect(() => evaluateSnpPolicy(v, { requireTsme: true })).not.toThrow();
    else expect(() => evaluateSnpPolicy(v, { requireTsme: true })).toThrow(expect.objectContaining({ code: 'ERR_POLICY_SNP_TSME' }));
  });
  test('mutations: a flipped MEASUREMENT bit fails the signature; another product is refused', () => {
    const bad = new Uint8Array(r.report);
    bad[0x90] = (bad[0x90] as number) ^ 1;
    expect(() => verify(r, bad)).toThrow(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE' }));
    const other: Product = r.product === 'milan' ? 'genoa' : 'milan';
    expect(() => verify(r, r.report, { product: other })).toThrow(expect.objectContaining({ code: 'ERR_SNP_PRODUCT_MISMATCH' }));
  });
});

describe('the Turin layout on the real Turin report', () => {
  const turin = REAL[3] as Real;
  test('REPORTED_TCB is read FMC-first (byte 0 = FMC, byte 1 = bootloader), not in the Milan/Genoa layout', () => {
    const p = parseSnpReport(turin.report);
    expect(toHex(p.REPORTED_TCB)).toBe('0001000200000047');
    expect(decodeTcb(p.REPORTED_TCB, 'genoa')).not.toEqual(turin.tcb);
  });
  test('the 8-byte hwID of a Turin VCEK is CHIP_ID[0:8]; the rest of CHIP_ID must be zero', () => {
    expect(toHex(parseSnpReport(turin.report).CHIP_ID)).toBe(`3b42092f69c656d3${'00'.repeat(56)}`);
    for (const at of [0x1a0, 0x1a8]) {
      const bad = new Uint8Array(turin.report);
      bad[at] = (bad[at] as number) ^ 1;
      expect(() => verify(turin, bad)).toThrow(expect.objectContaining({ code: 'ERR_SNP_VCEK_HWID_MISMATCH' }));
    }
  });
  test("another Turin chip's real VCEK (virtee/sev) is refused for this report", () => {
    expect(() => verify(turin, turin.report, { vcek: parseCertificate(vector('snp-virtee-turin-vcek.der')) })).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_SNP_VCEK_(HWID|TCB)_MISMATCH$/) }));
  });
});

test("a Genoa VCEK of another chip and TCB (the v3 report's) is refused for the v5 report", () => {
  const [v5, v3] = REAL as [Real, Real];
  expect(() => verify(v5, v5.report, { vcek: v3.certs[0] as Certificate })).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_SNP_VCEK_(HWID|TCB)_MISMATCH$/) }));
});
