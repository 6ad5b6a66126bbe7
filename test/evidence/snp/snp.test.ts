import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MalformedError, TresorError } from '../../../src/errors/index.js';
import { evaluateSnpPolicy, loadAmdRoots, parseSnpReport, parseTcbSpec, verifySnpAttestation, verifySnpReport } from '../../../src/evidence/snp/index.js';
import { toHex } from '../../../src/util/bytes.js';
import { parseCertificate } from '../../../src/x509/certificate.js';
import { vector } from '../../helpers/vectors.js';

const REPORT = vector('snp-go-sev-guest-milan-attestation.bin');
const vcek = parseCertificate(vector('snp-go-sev-guest-milan-vcek.der'));
const AT = new Date('2022-09-24T01:00:00Z');
const MEASUREMENT = 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01';

const outcome = (bytes: Uint8Array, cert = vcek, at = AT): string => {
  try {
    verifySnpReport(parseSnpReport(bytes), { vcek: cert, at });
    return 'pass';
  } catch (e) {
    return (e as TresorError).code;
  }
};

describe('the real go-sev-guest Milan report', () => {
  test('parses to the values the vectors README asserts', () => {
    const r = parseSnpReport(REPORT);
    expect(r.VERSION).toBe(2);
    expect(r.POLICY).toBe(0xb0000n);
    expect(r.policy).toMatchObject({ debug: true, smt: true });
    expect(r.VMPL).toBe(0);
    expect(r.PLATFORM_INFO).toBe(1n);
    expect(toHex(r.REPORTED_TCB)).toBe('0200000000000544');
    expect(toHex(r.MEASUREMENT)).toBe(MEASUREMENT);
    expect(toHex(r.REPORT_DATA)).toBe(`0102030405${'00'.repeat(59)}`);
    expect(toHex(r.CHIP_ID).startsWith('3ac3fe21e13fb0990eb28a802e3fb6a2')).toBe(true);
    expect(r.firmware.current).toBe('1.49.3');
    expect(r.SIGNING_KEY).toBe('vcek');
  });

  test('VCEK → ASK → ARK-Milan and the report signature verify, at the vector time and today', () => {
    const v = verifySnpReport(parseSnpReport(REPORT), { vcek, at: AT });
    expect(v.product).toBe('milan');
    expect(v.reportedTcb).toEqual({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
    expect(v.chain.map((c) => c.sha256)).toEqual([vcek.sha256, loadAmdRoots('milan').ask.sha256, loadAmdRoots('milan').ark.sha256]);
    expect(outcome(REPORT, vcek, new Date('2026-11-22T00:00:00Z'))).toBe('pass');
    expect(outcome(REPORT, vcek, new Date('2030-01-01T00:00:00Z'))).toBe('ERR_CHAIN_EXPIRED');
  });

  test('a debug guest: the default policy rejects it, --allow-debug accepts it', () => {
    const v = verifySnpReport(parseSnpReport(REPORT), { vcek, at: AT });
    expect(() => evaluateSnpPolicy(v, {})).toThrowError(expect.objectContaining({ code: 'ERR_POLICY_DEBUG', phase: 'policy' }));
    expect(() => evaluateSnpPolicy(v, { allowDebug: true, measurements: [MEASUREMENT], minTcb: parseTcbSpec('bl=2,tee=0,snp=5,ucode=68', 'milan') })).not.toThrow();
  });

  test('policy matrix: measurement, report data halves, min TCB per component, VMPL; all violations collected', () => {
    const v = verifySnpReport(parseSnpReport(REPORT), { vcek, at: AT });
    const base = { allowDebug: true };
    const code = (p: Parameters<typeof evaluateSnpPolicy>[1]) => {
      try {
        evaluateSnpPolicy(v, { ...base, ...p });
        return 'pass';
      } catch (e) {
        return (e as TresorError).code;
      }
    };
    expect(code({ measurements: ['ab'.repeat(48)] })).toBe('ERR_POLICY_MEASUREMENT');
    expect(code({ reportDataPrefix: new Uint8Array(32) })).toBe('ERR_POLICY_REPORT_DATA');
    expect(code({ reportDataSuffix: new Uint8Array(32) })).toBe('pass');
    expect(code({ reportData: new Uint8Array(64) })).toBe('ERR_POLICY_REPORT_DATA');
    for (const spec of ['bl=3,tee=0,snp=5,ucode=68', 'bl=2,tee=1,snp=5,ucode=68', 'bl=2,tee=0,snp=6,ucode=68', 'bl=2,tee=0,snp=5,ucode=69']) {
      expect(code({ minTcb: parseTcbSpec(spec, 'milan') })).toBe('ERR_POLICY_TCB');
    }
    expect(code({ minTcb: parseTcbSpec('0200000000000544', 'milan') })).toBe('pass');
    expect(code({ vmpl: 1 })).toBe('ERR_POLICY_VMPL');
    try {
      evaluateSnpPolicy(v, { measurements: ['00'.repeat(48)], vmpl: 2 });
    } catch (e) {
      expect((e as { violations: { code: string }[] }).violations.map((x) => x.code)).toEqual(['ERR_POLICY_DEBUG', 'ERR_POLICY_MEASUREMENT', 'ERR_POLICY_VMPL']);
    }
  });

  test('the Genoa roots must not accept the Milan VCEK', () => {
    expect(() => verifySnpReport(parseSnpReport(REPORT), { vcek, at: AT, product: 'genoa' })).toThrowError(expect.objectContaining({ code: 'ERR_SNP_PRODUCT_MISMATCH' }));
    expect(() => verifySnpReport(parseSnpReport(REPORT), { vcek, at: AT, arks: [loadAmdRoots('genoa').ark] })).toThrowError(expect.objectContaining({ code: 'ERR_CHAIN_UNTRUSTED' }));
  });

  test('every single-byte flip in [0, 0x2A0) fails (signature or a reserved-field parse error), never passes', () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 0x2a0; i++) {
      const b = new Uint8Array(REPORT);
      b[i] = (b[i] as number) ^ 0x01;
      const r = outcome(b);
      if (r === 'pass') throw new Error(`flip at 0x${i.toString(16)} passed`);
      seen.set(r, (seen.get(r) ?? 0) + 1);
    }
    // Most flips break the signature; flips in REPORTED_TCB, CHIP_ID or reserved bytes fail their own checks first.
    expect(seen.get('ERR_SNP_SIGNATURE')).toBeGreaterThan(300);
    expect(seen.has('ERR_SNP_VCEK_HWID_MISMATCH')).toBe(true);
    expect(seen.has('ERR_SNP_MBZ_NONZERO')).toBe(true);
  });

  test('reserved bytes, padding, size, version and algorithm are parse errors', () => {
    const mutate = (off: number, value: number) => {
      const b = new Uint8Array(REPORT);
      b[off] = value;
      return b;
    };
    expect(() => parseSnpReport(mutate(0x2a0 + 60, 1))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_MBZ_NONZERO', detail: { offset: 0x2a0 + 60 } }));
    expect(() => parseSnpReport(mutate(0x2e8 + 50, 1))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_MBZ_NONZERO' }));
    expect(() => parseSnpReport(mutate(0x400, 1))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_MBZ_NONZERO' }));
    expect(() => parseSnpReport(mutate(0x04c, 1))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_MBZ_NONZERO' }));
    expect(() => parseSnpReport(mutate(0x188, 0x19))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_MBZ_NONZERO' }));
    expect(() => parseSnpReport(mutate(0x000, 4))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_VERSION' }));
    expect(() => parseSnpReport(mutate(0x034, 2))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_SIGNATURE_ALGO' }));
    expect(() => parseSnpReport(REPORT.subarray(0, 1183))).toThrowError(expect.objectContaining({ code: 'ERR_SNP_SIZE' }));
  });

  test('a VCEK byte flip fails the chain', () => {
    const der = new Uint8Array(vector('snp-go-sev-guest-milan-vcek.der'));
    der[40] = (der[40] as number) ^ 0x01;
    let code = 'pass';
    try {
      code = outcome(REPORT, parseCertificate(der));
    } catch (e) {
      code = (e as TresorError).code;
    }
    expect(code).not.toBe('pass');
  });

  test('random and mutated inputs to the parser only ever raise MalformedError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1184, maxLength: 1184 }), (b) => {
        try {
          parseSnpReport(b);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat(1183), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const b = new Uint8Array(REPORT);
        b[pos] = (b[pos] as number) ^ x;
        try {
          parseSnpReport(b);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('the one-call pipeline', () => {
    expect(verifySnpAttestation(REPORT, { vcek, at: AT, policy: { allowDebug: true, measurements: [MEASUREMENT] } }).product).toBe('milan');
  });
});
