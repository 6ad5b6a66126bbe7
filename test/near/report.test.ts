import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { parseNearReport } from '../../src/near/report.js';
import { verifyNearReport, type NearReportOptions } from '../../src/near/verify-report.js';
import { createNearDeployment, type NearDeployment } from '../../src/sim/mint/near.js';
import { toHex } from '../../src/util/bytes.js';
import { code } from '../helpers/errors.js';

let d: NearDeployment;
beforeAll(async () => {
  d = await createNearDeployment();
});
const spki = 'ab'.repeat(32);
const nonce = randomBytes(32);
const opts = (o: Partial<NearReportOptions> = {}): NearReportOptions => ({ nonce, liveSpkiSha256: spki, at: new Date(), roots: [d.pki.root], allowedMrtd: [d.mrtd], ...o });
const report = () => parseNearReport(JSON.stringify(d.report(spki, toHex(nonce), 'sim-near/model')));
const withFault = <T>(f: keyof NearDeployment['faults'], run: () => T): T => {
  d.faults[f] = true;
  try {
    return run();
  } finally {
    delete d.faults[f];
  }
};

describe('NEAR / legacy attestation report', () => {
  test('gateway bound to the TLS key and our nonce, the model node to its address; both signers attested', () => {
    const { signers } = verifyNearReport(report(), opts({ policy: { allowedComposeHashes: [d.composeHash] } }));
    expect(signers.map((s) => [s.role, s.signingAddress, s.tlsBound, s.composeHash])).toEqual([
      ['gateway', d.gatewayAddress, true, d.composeHash],
      ['model', d.modelAddress, false, d.composeHash],
    ]);
    expect(signers[1]?.modelName).toBe('sim-near/model');
    expect(signers[0]?.mrtd).toBe(d.mrtd);
  });

  test('the flat legacy shape is one gateway attestation', () => {
    const flat = (d.report(spki, toHex(nonce), null) as { gateway_attestation: object }).gateway_attestation;
    const { signers } = verifyNearReport(parseNearReport(flat), opts());
    expect(signers.map((s) => s.role)).toEqual(['gateway']);
  });

  test('each broken binding or check fails with its own code', () => {
    expect(code(() => verifyNearReport(report(), opts({ liveSpkiSha256: 'cd'.repeat(32) })))).toBe('ERR_NEAR_REPORT_DATA');
    expect(code(() => verifyNearReport(report(), opts({ nonce: randomBytes(32) })))).toBe('ERR_NEAR_NONCE');
    expect(withFault('wrongNonce', () => code(() => verifyNearReport(report(), opts())))).toBe('ERR_NEAR_NONCE');
    expect(withFault('tlsUnbound', () => code(() => verifyNearReport(report(), opts())))).toBe('ERR_NEAR_TLS_UNBOUND');
    expect(withFault('wrongMeasurement', () => code(() => verifyNearReport(report(), opts())))).toBe('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED');
    expect(withFault('badQuote', () => code(() => verifyNearReport(report(), opts())))).toBe('ERR_TDX_QUOTE_SIGNATURE');
    expect(withFault('rtmr3Mismatch', () => code(() => verifyNearReport(report(), opts())))).toBe('ERR_POLICY_TDX_RTMR3_REPLAY');
    expect(code(() => verifyNearReport(report(), opts({ policy: { allowedComposeHashes: ['00'.repeat(32)] } })))).toBe('ERR_POLICY_TDX_COMPOSE_HASH');
    expect(code(() => verifyNearReport(report(), opts({ roots: [] })))).toBe('ERR_CHAIN_UNTRUSTED');
  });

  test('a report of model attestations only cannot bind the TLS key', () => {
    const r = report();
    expect(code(() => verifyNearReport({ attestations: r.attestations.filter((a) => a.role === 'model') }, opts()))).toBe('ERR_NEAR_REPORT_NO_GATEWAY');
  });

  test('malformed reports are refused by the parse layer', () => {
    for (const bad of ['[]', '{"signing_address": 1}', '{"gateway_attestation": {"signing_address": "0x12", "intel_quote": "00"}}', '{"model_attestations": {}}', 'not json']) {
      expect(code(() => parseNearReport(bad))).toBe('ERR_NEAR_REPORT_MALFORMED');
    }
  });
});
