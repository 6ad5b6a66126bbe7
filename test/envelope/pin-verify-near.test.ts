import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { nearPinReverifier } from '../../src/envelope/pin-verify-near.js';
import { pinReverifier, reverifyPin } from '../../src/envelope/pin-verify.js';
import { createNearDeployment, type NearDeployment } from '../../src/sim/mint/near.js';
import { mintTdxCollateral } from '../../src/sim/mint/tdx-collateral.js';
import { simTestRootsPem } from '../../src/sim/mint/test-roots.js';
import { parsePemCertificates, type Certificate } from '../../src/x509/certificate.js';
import { archivedPin, tlsLeaf } from '../helpers/pins.js';

let n: NearDeployment;
let leaf: Awaited<ReturnType<typeof tlsLeaf>>;
let roots: Certificate[];
beforeAll(async () => {
  [n, leaf] = await Promise.all([createNearDeployment(), tlsLeaf()]);
  roots = parsePemCertificates(simTestRootsPem({ near: n }), 'test roots');
});

/** A pin of the gateway's report (and a model node's when `model`) for our nonce and the leaf. */
function pinOf(o: { policy?: Record<string, unknown>; nonce?: string; spki?: string; model?: string; parts?: Record<string, Buffer> } = {}) {
  const nonce = randomBytes(32).toString('hex');
  return archivedPin({
    profile: 'near',
    report: n.report(o.spki ?? leaf.spkiSha256, nonce, o.model ?? null),
    nonce: o.nonce ?? nonce,
    leafDerB64: leaf.derB64,
    at: new Date(),
    policy: { allowedMeasurements: [n.mrtd], maxAgeSeconds: 300, tdx: {}, tdxCollateral: null, ...o.policy },
    ...(o.parts ? { parts: o.parts } : {}),
  });
}

describe('near pins re-verified offline', () => {
  test('registered, needing no release root', () => {
    expect(pinReverifier('near')).toBe(nearPinReverifier);
    expect(nearPinReverifier.needsReleaseRoot).toBe(false);
  });

  test('the summary the record states: the TLS-bound gateway; every signer described; TCB status unknown without collateral', async () => {
    const pin = pinOf({ model: 'm' });
    const v = await reverifyPin(pin, { testRoots: roots });
    expect(v.summary).toEqual({ upstream: 'u', profile: 'near', verified_at: pin.doc.verified_at, expires_at: new Date(Date.parse(pin.doc.verified_at) + 300_000).toISOString(), kind: 'tdx', measurement: n.mrtd, tag: n.gatewayAddress, tls_spki_sha256: leaf.spkiSha256, freshness: 'nonce-bound', channel: 'bound', test_roots: true });
    expect(v.described.lines).toContainEqual(['TCB status', 'unknown (no Intel collateral was configured, none archived)']);
    const signers = v.described.lines.find(([k]) => k === 'Signers')?.[1];
    expect(signers).toContain(`gateway ${n.gatewayAddress} MRTD ${n.mrtd}`);
    expect(signers).toContain(`model m ${n.modelAddress.toLowerCase()} MRTD ${n.mrtd}`);
  });

  test('with the collateral archived: the TCB status Intel gave', async () => {
    const collateral = Buffer.from(JSON.stringify(await mintTdxCollateral(n.pki, { now: new Date() })));
    const v = await reverifyPin(pinOf({ policy: { tdxCollateral: 'dir' }, parts: { [`tdx_collateral_${n.pki.platform.fmspc}`]: collateral } }), { testRoots: roots });
    expect(v.described.lines).toContainEqual(['TCB status', 'UpToDate per the archived Intel collateral']);
  });

  test.each([
    { name: 'another nonce', make: () => pinOf({ nonce: 'ab'.repeat(32) }), code: 'ERR_NEAR_NONCE' },
    { name: 'a gateway quote binding another TLS key', make: () => pinOf({ spki: 'cd'.repeat(32) }), code: 'ERR_NEAR_REPORT_DATA' },
    { name: 'an MRTD not in the archived allowlist', make: () => pinOf({ policy: { allowedMeasurements: ['00'.repeat(48)] } }), code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' },
    { name: 'collateral used by the daemon but not archived', make: () => pinOf({ policy: { tdxCollateral: 'pccs' } }), code: 'ERR_TDX_COLLATERAL_UNAVAILABLE' },
  ])('$name: the verifier refuses with $code', async ({ make, code }) => {
    await expect(reverifyPin(make(), { testRoots: roots })).rejects.toMatchObject({ code });
  });

  test('without the test roots: ERR_CHAIN_UNTRUSTED (only the pinned Intel root)', async () => {
    await expect(reverifyPin(pinOf(), {})).rejects.toMatchObject({ code: 'ERR_CHAIN_UNTRUSTED' });
  });
});
