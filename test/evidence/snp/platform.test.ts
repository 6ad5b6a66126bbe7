import 'reflect-metadata';
import { describe, expect, test } from 'vitest';
import { MalformedError, PolicyError, TresorError } from '../../../src/errors/index.js';
import { evaluateSnpPolicy, parseSnpReport, stricterSnpPolicy, verifySnpReport, type VerifiedSnp } from '../../../src/evidence/snp/index.js';
import { createSnpTestPki, mintSnpReport } from '../../../src/sim/mint/snp.js';
import { asVerified, type Verified } from '../../../src/types.js';
import { parseCertificate } from '../../../src/x509/certificate.js';
import { mintAmdCrl } from '../../helpers/amd-crl.js';
import { parseCrl } from '../../../src/x509/crl.js';
import { vector } from '../../helpers/vectors.js';
import { thrown } from '../../helpers/errors.js';

const REPORT = vector('snp-go-sev-guest-milan-attestation.bin');
const vcek = parseCertificate(vector('snp-go-sev-guest-milan-vcek.der'));
const AT = new Date('2022-09-24T01:00:00Z');
const real = verifySnpReport(parseSnpReport(REPORT), { vcek, at: AT });

const err = thrown;
const withPolicy = (policy: bigint) => {
  const b = new Uint8Array(REPORT);
  new DataView(b.buffer).setBigUint64(8, policy, true);
  return b;
};
/** The really-verified report with fields edited (policy is a pure function of the verified structure). */
const edited = (f: Partial<VerifiedSnp>): Verified<VerifiedSnp> => asVerified({ ...real, ...f } as VerifiedSnp);
const codes = (f: () => unknown) => ((err(f) as PolicyError).violations ?? []).map((v) => v.code);
const debugOk = { allowDebug: true };

describe('guest POLICY reserved bits (parse layer, as go-sev-guest abi)', () => {
  test('the real report (0xb0000) parses; bit 17 clear or any of bits 63:26 set is malformed, naming POLICY', () => {
    expect(parseSnpReport(REPORT).POLICY).toBe(0xb0000n);
    for (const p of [0x90000n, 0xb0000n | (1n << 26n), 0xb0000n | (1n << 63n)]) {
      const e = err(() => parseSnpReport(withPolicy(p)));
      expect(e).toBeInstanceOf(MalformedError);
      expect(e.code).toBe('ERR_SNP_POLICY_RESERVED');
      expect(e.message).toContain(`POLICY 0x${p.toString(16)}`);
    }
    expect(parseSnpReport(withPolicy(0xb0000n | (1n << 25n))).POLICY).toBe(0xb0000n | (1n << 25n)); // PAGE_SWAP_DISABLE is defined
  });
});

describe('policy over the real report: MIGRATE_MA, SMT, TSME, provisional firmware, launch TCB', () => {
  test('the real report passes the defaults (SMT allowed) once debug is allowed', () => {
    expect(() => evaluateSnpPolicy(real, debugOk)).not.toThrow();
    expect(real.platformInfo).toEqual({ smtEnabled: true, tsmeEnabled: false });
  });
  test('MIGRATE_MA is refused unless allowed', () => {
    const r = edited({ POLICY: 0xf0000n, policy: { ...real.policy, migrateMa: true } });
    expect(codes(() => evaluateSnpPolicy(r, debugOk))).toEqual(['ERR_POLICY_SNP_MIGRATE_MA']);
    expect(() => evaluateSnpPolicy(r, { ...debugOk, allowMigrateMa: true })).not.toThrow();
  });
  test('SMT is refusable (the real host has SMT_EN), TSME can be required (the real host has none)', () => {
    expect(codes(() => evaluateSnpPolicy(real, { ...debugOk, allowSmt: false }))).toEqual(['ERR_POLICY_SNP_SMT']);
    expect(codes(() => evaluateSnpPolicy(real, { ...debugOk, requireTsme: true }))).toEqual(['ERR_POLICY_SNP_TSME']);
  });
  test('provisional firmware (CURRENT_TCB or build ≠ COMMITTED) is refused unless allowed', () => {
    const tcb = edited({ CURRENT_TCB: Uint8Array.from([3, 0, 0, 0, 0, 0, 5, 68]) });
    expect(codes(() => evaluateSnpPolicy(tcb, debugOk))).toEqual(['ERR_POLICY_SNP_PROVISIONAL']);
    const fw = edited({ firmware: { current: '1.55.3', committed: '1.49.3' } });
    expect(err(() => evaluateSnpPolicy(fw, debugOk)).message).toContain('firmware 1.55.3');
    expect(() => evaluateSnpPolicy(fw, { ...debugOk, allowProvisionalFirmware: true })).not.toThrow();
  });
  test('minimum launch TCB, component by component', () => {
    expect(() => evaluateSnpPolicy(real, { ...debugOk, minLaunchTcb: { bootloader: 2, tee: 0, snp: 5, microcode: 68 } })).not.toThrow();
    const e = err(() => evaluateSnpPolicy(real, { ...debugOk, minLaunchTcb: { bootloader: 2, tee: 0, snp: 8, microcode: 68 } }));
    expect(e.code).toBe('ERR_POLICY_SNP_LAUNCH_TCB');
    expect(e.message).toBe('LAUNCH_TCB bl=2,tee=0,snp=5,ucode=68 is below the floor bl=2,tee=0,snp=8,ucode=68 (snp)');
  });
});

describe('VCEK extensions and product', () => {
  test('a Turin VCEK without its fmcSPL cannot vouch for a Turin TCB', async () => {
    const pki = await createSnpTestPki({ product: 'turin', vcekTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 } });
    const report = parseSnpReport(mintSnpReport(pki, { version: 3, measurement: new Uint8Array(48), reportData: new Uint8Array(64) }));
    const e = err(() => verifySnpReport(report, { vcek: pki.vcek, chain: [pki.ask], arks: [pki.ark], at: new Date() }));
    expect(e.code).toBe('ERR_SNP_VCEK_EXTENSION');
    expect(e.message).toContain('missing fmc');
  });
  test('a v3 report whose CPUID says another product than the VCEK is refused', async () => {
    const pki = await createSnpTestPki({ product: 'genoa' });
    const bytes = mintSnpReport(pki, { version: 3, measurement: new Uint8Array(48), reportData: new Uint8Array(64) });
    expect(verifySnpReport(parseSnpReport(bytes), { vcek: pki.vcek, chain: [pki.ask], arks: [pki.ark], at: new Date() }).product).toBe('genoa');
    bytes.set([0x19, 0x01, 0x01], 0x188); // Milan's CPUID (the signature is checked after the product)
    expect(err(() => verifySnpReport(parseSnpReport(bytes), { vcek: pki.vcek, chain: [pki.ask], arks: [pki.ark], at: new Date() })).code).toBe('ERR_SNP_PRODUCT_MISMATCH');
  });
});

describe("AMD's CRL (issued by the ARK, RSA-PSS SHA-384), checked when given", () => {
  const crlFor = async (pki: Awaited<ReturnType<typeof createSnpTestPki>>, o: { serials?: string[]; thisUpdate?: Date; nextUpdate?: Date }) =>
    parseCrl(await mintAmdCrl(pki, o), 'AMD CRL', 'ERR_SNP_CRL_MALFORMED');
  test('a current CRL without the ASK passes; one listing the ASK revokes it; a stale one and a foreign one are refused', async () => {
    const pki = await createSnpTestPki();
    const report = parseSnpReport(mintSnpReport(pki, { measurement: new Uint8Array(48), reportData: new Uint8Array(64) }));
    const verify = (crl: ReturnType<typeof parseCrl>) => verifySnpReport(report, { vcek: pki.vcek, chain: [pki.ask], arks: [pki.ark], at: new Date(), crl });
    expect(verify(await crlFor(pki, { serials: ['0abc'] })).product).toBe('milan');
    const revokedCrl = await crlFor(pki, { serials: [pki.ask.parsed.serialNumber] });
    const revoked = err(() => verify(revokedCrl));
    expect(revoked.code).toBe('ERR_CHAIN_REVOKED');
    expect(revoked.message).toContain('ASK');
    const staleCrl = await crlFor(pki, { thisUpdate: new Date(Date.now() - 10 * 86_400_000), nextUpdate: new Date(Date.now() - 86_400_000) });
    expect(err(() => verify(staleCrl)).code).toBe('ERR_SNP_CRL_STALE');
    const other = await createSnpTestPki();
    const foreignCrl = await crlFor(other, {});
    // Same subject name (both simulated ARK-Milan), another key: the signature fails.
    expect(err(() => verify(foreignCrl)).code).toBe('ERR_CRL_SIGNATURE');
  });
});

describe('stricterSnpPolicy: the trust bundle and the config combine knob by knob to the stricter', () => {
  test('allow* hold only if neither side says false; require_tsme if either says so; TCB floors the higher per component', () => {
    expect(stricterSnpPolicy({ allowSmt: true, allowMigrateMa: true, allowProvisionalFirmware: true }, { allowSmt: false, allowMigrateMa: false }, 'milan')).toMatchObject({ allowSmt: false, allowMigrateMa: false, allowProvisionalFirmware: true, requireTsme: false });
    expect(stricterSnpPolicy({ allowSmt: false, allowMigrateMa: false }, { allowSmt: true, allowMigrateMa: true, allowProvisionalFirmware: true, requireTsme: true }, 'milan')).toMatchObject({ allowSmt: false, allowMigrateMa: false, allowProvisionalFirmware: false, requireTsme: true });
    expect(stricterSnpPolicy({}, {}, 'milan')).toEqual({ allowSmt: true, allowMigrateMa: false, allowProvisionalFirmware: false, requireTsme: false });
    const both = stricterSnpPolicy({ minLaunchTcb: 'bl=3,tee=1,snp=8,ucode=100', minTcb: 'bl=1,tee=0,snp=1,ucode=1' }, { minLaunchTcb: { bootloader: 2, tee: 0, snp: 9, microcode: 115 } }, 'milan');
    expect(both.minLaunchTcb).toEqual({ bootloader: 3, tee: 1, snp: 9, microcode: 115 });
    expect(both.minTcb).toEqual({ bootloader: 1, tee: 0, snp: 1, microcode: 1 });
    expect(stricterSnpPolicy({}, { minLaunchTcb: 'bl=1,tee=0,snp=2,ucode=71,fmc=3' }, 'turin').minLaunchTcb).toEqual({ bootloader: 1, tee: 0, snp: 2, microcode: 71, fmc: 3 });
  });
});
