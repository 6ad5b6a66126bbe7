import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { MalformedError, PolicyError, TresorError, VerificationError } from '../../../src/errors/index.js';
import {
  DSTACK_RUNTIME_EVENT_TYPE,
  evaluateTdxPolicy,
  loadIntelSgxRoots,
  parseDstackEventLog,
  parseTdxQuote,
  replayRtmr,
  verifyTdxAttestation,
  verifyTdxQuote,
  type VerifiedTdxQuote,
} from '../../../src/evidence/tdx/index.js';
import { TD } from '../../../src/evidence/tdx/constants.js';
import { asVerified, type Verified } from '../../../src/types.js';
import { sha256, sha384, toHex } from '../../../src/util/bytes.js';
import { parsePemCertificates } from '../../../src/x509/certificate.js';
import { thrown } from '../../helpers/errors.js';

const vec = (f: string) => new Uint8Array(readFileSync(new URL(`../../vectors/${f}`, import.meta.url)));
const QUOTE = vec('tdx-tinfoil-quote-v4.bin');
const AT = new Date('2026-01-01T00:00:00Z');
const roots = loadIntelSgxRoots();

const err = thrown;
const verifyBytes = (b: Uint8Array, at = AT) => verifyTdxQuote(parseTdxQuote(b), { at, roots });

describe('parse: the real tinfoil quote v4', () => {
  const q = parseTdxQuote(QUOTE);
  test('header and lengths', () => {
    expect(q.version).toBe(4);
    expect(q.teeType).toBe(0x81);
    expect(q.attKeyType).toBe(2);
    expect(q.qeVendorId).toBe('939a7233f79c4ca9940a0db3957f0607');
    expect(QUOTE.length).toBe(5006);
    expect(q.quoteLength).toBe(4936); // the rest is zero padding
    expect(q.signedBytes.length).toBe(632);
    expect(parsePemCertificates(q.pckChainPem)).toHaveLength(3);
  });
  test('MRTD, RTMR0-3 and REPORTDATA are read from their documented offsets', () => {
    const at = (k: keyof typeof TD) => toHex(QUOTE.subarray(48 + TD[k][0], 48 + TD[k][0] + TD[k][1]));
    expect(toHex(q.body.mrTd)).toBe(at('mrTd'));
    expect(toHex(q.body.mrTd)).toBe('7357a10d2e2724dffe68813e3cc4cfcde6814d749f2fb62e3953e54f6e0b50a219786afe2cd478f684b52c61837e1114');
    expect(toHex(q.body.rtmr0)).toBe(at('rtmr0'));
    expect(toHex(q.body.rtmr1)).toBe(at('rtmr1'));
    expect(toHex(q.body.rtmr2)).toBe(at('rtmr2'));
    expect(toHex(q.body.rtmr3)).toBe(at('rtmr3'));
    expect(toHex(q.body.reportData)).toBe(at('reportData'));
    expect(q.body.mrTd).toHaveLength(48);
    expect(q.body.reportData).toHaveLength(64);
  });
  test('malformed inputs each have their code', () => {
    const set = (off: number, val: number[]) => {
      const b = new Uint8Array(QUOTE);
      b.set(val, off);
      return b;
    };
    expect(err(() => parseTdxQuote(set(0, [3, 0]))).code).toBe('ERR_TDX_VERSION');
    expect(err(() => parseTdxQuote(set(2, [3, 0]))).code).toBe('ERR_TDX_KEY_TYPE');
    expect(err(() => parseTdxQuote(set(4, [0, 0, 0, 0]))).code).toBe('ERR_TDX_TEE_TYPE');
    expect(err(() => parseTdxQuote(QUOTE.subarray(0, 700))).code).toBe('ERR_TDX_TRUNCATED');
    expect(err(() => parseTdxQuote(QUOTE.subarray(0, 4935))).code).toBe('ERR_TDX_TRUNCATED');
    expect(err(() => parseTdxQuote(set(5000, [1]))).code).toBe('ERR_TDX_TRAILING');
    expect(err(() => parseTdxQuote(new Uint8Array(70 * 1024))).code).toBe('ERR_TDX_TOO_LARGE');
    expect(err(() => parseTdxQuote('quote' as unknown as Uint8Array)).code).toBe('ERR_TDX_MALFORMED');
    // A non-ASCII byte inside the PEM chain (which starts after the QE auth data).
    const q = parseTdxQuote(QUOTE);
    const pemStart = 4936 - q.pckChainPem.length - 1;
    expect(err(() => parseTdxQuote(set(pemStart + 100, [0x80]))).code).toBe('ERR_TDX_PCK_CHAIN');
    // certification_data.type at 632 + 4 + 128
    expect(err(() => parseTdxQuote(set(764, [5, 0]))).code).toBe('ERR_TDX_CERT_TYPE');
    // certification_data.size one too small
    const size = new DataView(QUOTE.buffer, QUOTE.byteOffset).getUint32(766, true);
    const b = new Uint8Array(QUOTE);
    new DataView(b.buffer).setUint32(766, size - 1, true);
    expect(err(() => parseTdxQuote(b)).code).toBe('ERR_TDX_LENGTH');
  });
  test('fast-check: random and mutated bytes only ever raise MalformedError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => {
        try {
          parseTdxQuote(b);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4999 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 5006 }), (i, v, cut) => {
        const b = new Uint8Array(QUOTE.subarray(0, Math.max(cut, i + 1)));
        b[i] = v;
        try {
          parseTdxQuote(b);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('verify: the real quote', () => {
  test('quote signature, QE report signature, QE binding and PCK chain verify', () => {
    const v = verifyBytes(QUOTE);
    expect(v.tcbStatus).toBe('unknown');
    expect(v.pckChain).toHaveLength(3);
    expect(v.pckChain[2]?.sha256).toBe(roots[0]?.sha256);
    expect(v.pckChain[0]?.subject).toContain('Intel SGX PCK Certificate');
  });
  test('time is injected: before the PCK leaf and after its expiry fail with chain codes', () => {
    expect(err(() => verifyBytes(QUOTE, new Date('2025-08-01T00:00:00Z'))).code).toBe('ERR_CHAIN_NOT_YET_VALID');
    expect(err(() => verifyBytes(QUOTE, new Date('2032-09-01T00:00:00Z'))).code).toBe('ERR_CHAIN_EXPIRED');
  });
  test('a quote with an empty PCK chain is refused', () => {
    const q = parseTdxQuote(QUOTE);
    expect(err(() => verifyTdxQuote({ ...q, pckChainPem: '' }, { at: AT, roots })).code).toBe('ERR_TDX_PCK_CHAIN');
  });
  test('the root file must be the Intel SGX Root CA', () => {
    expect(err(() => loadIntelSgxRoots(new URL('../../../certs/aws-nitro-root-g1.pem', import.meta.url))).code).toBe('ERR_CONFIG_TRUST_ROOT');
  });
  test('a different pinned root refuses the chain', () => {
    const nitro = parsePemCertificates(readFileSync(new URL('../../../certs/aws-nitro-root-g1.pem', import.meta.url), 'utf8'));
    expect(err(() => verifyTdxQuote(parseTdxQuote(QUOTE), { at: AT, roots: nitro })).code).toBe('ERR_CHAIN_UNTRUSTED');
  });
  test('single-byte changes across the signed region quote[0:632] all fail (every 3rd byte: each costs a full chain parse)', () => {
    let sampled = 0;
    for (let i = 0; i < 632; i += 3) {
      const b = new Uint8Array(QUOTE);
      b[i] = (b[i] as number) ^ 0x01;
      const e = err(() => verifyBytes(b));
      // Header fields the parser checks fail as malformed; everything else fails the quote signature.
      if (e instanceof MalformedError) expect(i).toBeLessThan(48);
      else if (i >= 12 && i < 28) expect(e.code).toBe('ERR_TDX_QE_VENDOR');
      else expect(e.code).toBe('ERR_TDX_QUOTE_SIGNATURE');
      sampled++;
    }
    expect(sampled).toBe(211);
  });
  test('tampering with each signature-data part fails with its own code', () => {
    const flip = (off: number) => {
      const b = new Uint8Array(QUOTE);
      b[off] = (b[off] as number) ^ 0x80;
      return b;
    };
    expect(err(() => verifyBytes(flip(636 + 10))).code).toBe('ERR_TDX_QUOTE_SIGNATURE'); // quote signature
    expect(['ERR_TDX_QE_BINDING']).toContain(err(() => verifyBytes(flip(636 + 64 + 5))).code); // attestation key
    expect(err(() => verifyBytes(flip(770 + 100))).code).toBe('ERR_TDX_QE_REPORT_SIGNATURE'); // QE report
    expect(err(() => verifyBytes(flip(770 + 384 + 3))).code).toBe('ERR_TDX_QE_REPORT_SIGNATURE'); // QE report signature
    const authOff = 770 + 384 + 64 + 2;
    expect(err(() => verifyBytes(flip(authOff))).code).toBe('ERR_TDX_QE_BINDING'); // QE auth data
    const b = new Uint8Array(QUOTE);
    b.set([0x11], 12); // QE vendor id
    expect(err(() => verifyBytes(b)).code).toBe('ERR_TDX_QE_VENDOR');
  });
});

describe('policy', () => {
  let real: Verified<VerifiedTdxQuote>;
  beforeAll(() => {
    real = verifyBytes(QUOTE);
  });
  // Policy is a pure function of the verified structure. To reach branches the real quote cannot
  // (a debug TD, an RTMR3 we know the log of), the tests edit a copy of the really-verified quote.
  const edited = (f: (q: VerifiedTdxQuote) => void) => {
    const copy = { ...real, body: { ...real.body } } as VerifiedTdxQuote;
    f(copy);
    return asVerified(copy);
  };
  const policyCodes = (f: () => unknown) => {
    const e = err(f);
    expect(e).toBeInstanceOf(PolicyError);
    return (e as PolicyError).violations.map((v) => v.code);
  };

  test('the real quote passes an allowlist of its own measurements and exposes them', () => {
    const report = evaluateTdxPolicy(real, {
      allowedMeasurements: [{ mrtd: toHex(real.body.mrTd), rtmr0: toHex(real.body.rtmr0), rtmr1: toHex(real.body.rtmr1), rtmr2: toHex(real.body.rtmr2) }],
      expectedReportData: real.body.reportData,
    });
    expect(report.tcbStatus).toBe('unknown');
    expect(report.mrtd).toBe(toHex(real.body.mrTd));
    expect(report.rtmr[3]).toBe(toHex(real.body.rtmr3));
  });
  test('debug bit, measurement and REPORTDATA violations are all collected', () => {
    const dbg = edited((q) => {
      q.body.tdAttributes = Uint8Array.of(1, 0, 0, 0x10, 0, 0, 0, 0);
    });
    expect(
      policyCodes(() => evaluateTdxPolicy(dbg, { allowedMeasurements: [{ mrtd: '00'.repeat(48) }], expectedReportData: new Uint8Array(64) })),
    ).toEqual(['ERR_POLICY_TDX_DEBUG', 'ERR_POLICY_TDX_MEASUREMENT', 'ERR_POLICY_TDX_REPORT_DATA']);
    expect(() => evaluateTdxPolicy(dbg, { allowDebug: true })).not.toThrow();
    expect(policyCodes(() => evaluateTdxPolicy(real, { allowedMeasurements: [{ rtmr1: '11'.repeat(48) }] }))).toEqual(['ERR_POLICY_TDX_MEASUREMENT']);
  });

  describe('RTMR3 replay and the compose-hash pin', () => {
    const appCompose = '{"manifest_version":2,"name":"aci-gateway","runner":"docker-compose"}';
    const composeHash = toHex(sha256(Buffer.from(appCompose)));
    const runtime = (event: string, payloadHex: string) => {
      const type = Buffer.alloc(4);
      type.writeUInt32LE(DSTACK_RUNTIME_EVENT_TYPE);
      const digest = sha384(type, Buffer.from(':'), Buffer.from(event), Buffer.from(':'), Buffer.from(payloadHex, 'hex'));
      return { imr: 3, event_type: DSTACK_RUNTIME_EVENT_TYPE, digest: toHex(digest), event, event_payload: payloadHex };
    };
    const rawLog = [
      { imr: 0, event_type: 1, digest: 'ab'.repeat(48), event: '', event_payload: '' },
      runtime('app-id', 'aa'.repeat(20)),
      runtime('compose-hash', composeHash),
      runtime('os-image-hash', 'bb'.repeat(32)),
      runtime('system-ready', ''),
    ];
    const log = parseDstackEventLog(JSON.stringify(rawLog));
    const withRtmr3 = (rtmr3: Uint8Array) => edited((q) => {
      q.body.rtmr3 = rtmr3;
    });

    test('replay is SHA-384 chaining of padded digests over imr 3 only', () => {
      let mr: Uint8Array = new Uint8Array(48);
      for (const e of rawLog.filter((x) => x.imr === 3)) mr = sha384(mr, Buffer.from(e.digest, 'hex'));
      expect(toHex(replayRtmr(log, 3))).toBe(toHex(mr));
    });
    test('a matching log pins the compose hash', () => {
      const q = withRtmr3(replayRtmr(log, 3));
      const r = evaluateTdxPolicy(q, { eventLog: log, appCompose, allowedComposeHashes: [composeHash] });
      expect(r.composeHash).toBe(composeHash);
    });
    test('a log that does not replay, a wrong app_compose, an unpinned compose hash', () => {
      expect(policyCodes(() => evaluateTdxPolicy(real, { eventLog: log }))).toEqual(['ERR_POLICY_TDX_RTMR3_REPLAY']);
      const q = withRtmr3(replayRtmr(log, 3));
      expect(policyCodes(() => evaluateTdxPolicy(q, { eventLog: log, appCompose: `${appCompose} ` }))).toEqual(['ERR_POLICY_TDX_APP_COMPOSE']);
      expect(policyCodes(() => evaluateTdxPolicy(q, { eventLog: log, allowedComposeHashes: ['00'.repeat(32)] }))).toEqual(['ERR_POLICY_TDX_COMPOSE_HASH']);
      expect(policyCodes(() => evaluateTdxPolicy(real, { allowedComposeHashes: [composeHash] }))).toEqual(['ERR_POLICY_TDX_COMPOSE_EVENT']);
    });
    test('a compose-hash event after system-ready, or twice, is refused', () => {
      const late = parseDstackEventLog([rawLog[1], runtime('system-ready', ''), runtime('compose-hash', composeHash)]);
      expect(policyCodes(() => evaluateTdxPolicy(withRtmr3(replayRtmr(late, 3)), { eventLog: late }))).toEqual(['ERR_POLICY_TDX_COMPOSE_EVENT']);
      const twice = parseDstackEventLog([runtime('compose-hash', composeHash), runtime('compose-hash', '00'.repeat(32))]);
      expect(policyCodes(() => evaluateTdxPolicy(withRtmr3(replayRtmr(twice, 3)), { eventLog: twice }))).toEqual(['ERR_POLICY_TDX_COMPOSE_EVENT']);
    });
    test('a runtime event whose logged digest lies about its content is refused', () => {
      const lying = rawLog.map((e) => (e.event === 'os-image-hash' ? { ...e, digest: 'cd'.repeat(48) } : e));
      const l = parseDstackEventLog(lying);
      expect(policyCodes(() => evaluateTdxPolicy(withRtmr3(replayRtmr(l, 3)), { eventLog: l }))).toEqual(['ERR_POLICY_TDX_EVENT_DIGEST']);
    });
    test('malformed event logs', () => {
      for (const bad of ['nope', '{}', [{ imr: 4, event_type: 1, digest: '', event: '' }], [{ imr: 3, event_type: 1, digest: 'zz' }], [{ imr: 3, event_type: -1, digest: '' }]]) {
        expect(err(() => parseDstackEventLog(bad)).code).toBe('ERR_TDX_EVENT_LOG');
      }
    });
  });

  test('verifyTdxAttestation runs all three layers', () => {
    const { report } = verifyTdxAttestation(QUOTE, { at: AT, roots, policy: {} });
    expect(report.mrtd).toBe(toHex(real.body.mrTd));
    expect(err(() => verifyTdxAttestation(QUOTE, { at: AT, roots, policy: { expectedReportData: new Uint8Array(64) } }))).toBeInstanceOf(PolicyError);
    expect(VerificationError).toBeDefined();
  });
});
