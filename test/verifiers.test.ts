import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  CertificateChainError,
  EvidenceMalformedError,
  EvidenceVerificationError,
  MeasurementNotAllowedError,
  AttestationPolicyError,
  verifyNitroDocument,
  verifySnpReport,
  verifyTdxQuote,
  verifyTrustBundle,
  BundleSignatureInvalid,
} from '../src/index.js';
import { createRouterEvidence } from '../src/sim/mint/router.js';
import { parseNitroDocument } from '../src/evidence/nitro/index.js';
import { vector, vectorPath } from './helpers/vectors.js';

const PROD = 'nitro-anjuna-prod-2021-03-17.cbor';
const nitroAt = (name: string) => new Date(parseNitroDocument(vector(name)).timestamp);
const SNP_AT = new Date('2022-09-24T01:00:00Z');
const MEASUREMENT = 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01';
const vcekPem = readFileSync(vectorPath('snp-go-sev-guest-milan-vcek.pem'), 'utf8');

describe('the public verifiers: bytes in, time and roots injected, typed errors out', () => {
  test('verifyNitroDocument: a real document at its own time against the pinned AWS root; later its chain has expired', () => {
    const doc = verifyNitroDocument(vector(PROD), { at: nitroAt(PROD), policy: { maxAgeSeconds: null } });
    expect(doc.pcrs.size).toBe(16);
    expect(() => verifyNitroDocument(vector(PROD), { at: new Date('2026-11-22T00:00:00Z') })).toThrowError(CertificateChainError);
    expect(() => verifyNitroDocument(vector(PROD), { at: nitroAt(PROD), policy: { maxAgeSeconds: null, allowedPcrs: [{ 0: '00'.repeat(48) }] } })).toThrowError(MeasurementNotAllowedError);
    expect(() => verifyNitroDocument(new Uint8Array([1, 2, 3]), { at: nitroAt(PROD) })).toThrowError(EvidenceMalformedError);
  });

  test('verifyNitroDocument with injected roots: the pinned root is not used', () => {
    const otherRoot = readFileSync(new URL('../certs/intel-sgx-root-ca.pem', import.meta.url), 'utf8');
    expect(() => verifyNitroDocument(vector(PROD), { at: nitroAt(PROD), roots: otherRoot, policy: { maxAgeSeconds: null } })).toThrowError(
      expect.objectContaining({ name: 'CertificateChainError', code: 'ERR_CHAIN_UNTRUSTED' }),
    );
  });

  test('verifySnpReport: the go-sev-guest report with its VCEK (PEM), and the measurement allowlist', () => {
    const r = verifySnpReport(vector('snp-go-sev-guest-milan-attestation.bin'), { at: SNP_AT, vcek: vcekPem, policy: { measurements: [MEASUREMENT], allowDebug: true } });
    // The vector is a debug guest: refused by default.
    expect(() => verifySnpReport(vector('snp-go-sev-guest-milan-attestation.bin'), { at: SNP_AT, vcek: vcekPem })).toThrowError(AttestationPolicyError);
    expect(r.product).toBe('milan');
    expect(() => verifySnpReport(vector('snp-go-sev-guest-milan-attestation.bin'), { at: SNP_AT, vcek: vcekPem, policy: { measurements: ['00'.repeat(48)], allowDebug: true } })).toThrowError(
      expect.objectContaining({ name: 'MeasurementNotAllowedError', code: 'ERR_POLICY_MEASUREMENT', phase: 'policy' }),
    );
    const flipped = vector('snp-go-sev-guest-milan-attestation.bin');
    flipped[0x90] = (flipped[0x90] as number) ^ 1;
    expect(() => verifySnpReport(flipped, { at: SNP_AT, vcek: vcekPem })).toThrowError(EvidenceVerificationError);
  });

  test('verifyTdxQuote: a real v4 quote against the pinned Intel root; a measurement refusal is typed', () => {
    const { quote } = verifyTdxQuote(vector('tdx-tinfoil-quote-v4.bin'), { at: new Date('2026-01-01T00:00:00Z') });
    expect(quote.body.mrTd.length).toBe(48);
    expect(() => verifyTdxQuote(vector('tdx-tinfoil-quote-v4.bin'), { at: new Date('2026-01-01T00:00:00Z'), policy: { allowedMeasurements: [{ mrtd: '00'.repeat(48) }] } })).toThrowError(
      MeasurementNotAllowedError,
    );
  });

  test('verifyTrustBundle: the simulator bundle against its release root; another root is BundleSignatureInvalid', async () => {
    const ev = await createRouterEvidence({});
    const other = await createRouterEvidence({});
    const at = new Date();
    const jws = ev.bundle();
    expect(verifyTrustBundle(jws, { releaseRoot: ev.releaseRoot.publicPem, at }).allowedMeasurements.length).toBeGreaterThan(0);
    expect(() => verifyTrustBundle(jws, { releaseRoot: other.releaseRoot.publicPem, at })).toThrowError(BundleSignatureInvalid);
  });
});
