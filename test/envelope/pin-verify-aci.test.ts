import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { aciPinReverifier } from '../../src/envelope/pin-verify-aci.js';
import { pinReverifier, reverifyPin } from '../../src/envelope/pin-verify.js';
import { createAciDeployment, type AciDeployment } from '../../src/sim/mint/aci.js';
import { mintTdxCollateral } from '../../src/sim/mint/tdx-collateral.js';
import type { TdxTestPki } from '../../src/sim/mint/tdx.js';
import { simTestRootsPem } from '../../src/sim/mint/test-roots.js';
import { parsePemCertificates, type Certificate } from '../../src/x509/certificate.js';
import { archivedPin, tlsLeaf } from '../helpers/pins.js';

let tdx: AciDeployment;
let snp: AciDeployment;
let leaf: Awaited<ReturnType<typeof tlsLeaf>>;
const roots = (d: AciDeployment): Certificate[] => parsePemCertificates(simTestRootsPem({ aci: d }), 'test roots');
beforeAll(async () => {
  [tdx, snp, leaf] = await Promise.all([createAciDeployment({ tee: 'tdx' }), createAciDeployment(), tlsLeaf()]);
});

/** A pin of `d`'s report for our nonce and the leaf, as the daemon archives it. */
function pinOf(d: AciDeployment, o: { policy?: Record<string, unknown>; nonce?: string; parts?: Record<string, Buffer> } = {}) {
  const nonce = randomBytes(32).toString('hex');
  return archivedPin({
    profile: 'aci',
    report: d.attestation(leaf.spkiSha256, nonce),
    nonce: o.nonce ?? nonce,
    leafDerB64: leaf.derB64,
    at: new Date(),
    policy: { hostname: '127.0.0.1', allowedMeasurements: [d.measurement], maxAgeSeconds: 600, allowDebug: false, tdx: {}, tdxCollateral: null, snp: {}, snpCrl: false, ...o.policy },
    ...(o.parts ? { parts: o.parts } : {}),
  });
}

describe('aci pins re-verified offline', () => {
  test('registered, needing no release root', () => {
    expect(pinReverifier('aci')).toBe(aciPinReverifier);
    expect(aciPinReverifier.needsReleaseRoot).toBe(false);
  });

  test('TDX without collateral: the summary the record states; TCB status unknown, as the daemon saw it', async () => {
    const pin = pinOf(tdx);
    const v = await reverifyPin(pin, { testRoots: roots(tdx), testRootsLabel: 'roots.pem' });
    expect(v.summary).toMatchObject({ upstream: 'u', profile: 'aci', verified_at: pin.doc.verified_at, kind: 'tdx', measurement: tdx.mrtd, tag: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), tls_spki_sha256: leaf.spkiSha256, freshness: 'nonce-bound', channel: 'bound', test_roots: true });
    // expires_at: the earlier of not_after and verified_at + max_age_seconds.
    expect(Date.parse(v.summary.expires_at as string) - Date.parse(pin.doc.verified_at)).toBe(600_000);
    expect(v.described.lines).toContainEqual(['TCB status', 'unknown (no Intel collateral was configured, none archived)']);
    expect(v.described.lines).toContainEqual(['Trust roots', 'pinned vendor roots and test roots from roots.pem']);
  });

  test('TDX with archived collateral: the TCB status Intel gave; a daemon with collateral but none archived fails', async () => {
    const pki = tdx.tdxPki as TdxTestPki;
    const collateral = Buffer.from(JSON.stringify(await mintTdxCollateral(pki, { now: new Date() })));
    const v = await reverifyPin(pinOf(tdx, { policy: { tdxCollateral: 'file' }, parts: { [`tdx_collateral_${pki.platform.fmspc}`]: collateral } }), { testRoots: roots(tdx) });
    expect(v.described.lines).toContainEqual(['TCB status', 'UpToDate per the archived Intel collateral']);
    await expect(reverifyPin(pinOf(tdx, { policy: { tdxCollateral: 'pccs' } }), { testRoots: roots(tdx) })).rejects.toMatchObject({ code: 'ERR_TDX_COLLATERAL_UNAVAILABLE' });
  });

  test('SEV-SNP: the report and VCEK chain inside the body verified to the ARK given; the CRL named as not re-checked', async () => {
    const v = await reverifyPin(pinOf(snp, { policy: { snpCrl: true } }), { testRoots: roots(snp) });
    expect(v.summary).toMatchObject({ kind: 'sev_snp', measurement: snp.measurement });
    expect(v.described.lines.map(([k]) => k)).toContain('Reported TCB');
    expect(v.notRechecked).toContain("AMD's CRL (snp.crl_file was configured; the CRL is not archived)");
  });

  test.each([
    { name: 'another nonce', make: () => pinOf(tdx, { nonce: 'ab'.repeat(32) }), code: 'ERR_ACI_REPORT_DATA' },
    { name: 'a measurement not in the archived allowlist', make: () => pinOf(tdx, { policy: { allowedMeasurements: ['00'.repeat(48)] } }), code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' },
    { name: 'an archived TDX policy the quote fails (another compose hash pinned)', make: () => pinOf(tdx, { policy: { tdx: { allowedComposeHashes: ['00'.repeat(32)] } } }), code: 'ERR_POLICY_TDX_COMPOSE_HASH' },
  ])('$name: the verifier refuses with $code', async ({ make, code }) => {
    await expect(reverifyPin(make(), { testRoots: roots(tdx) })).rejects.toMatchObject({ code });
  });

  test('another TLS key than the keyset lists: ERR_ACI_TLS_KEY; without the test roots: ERR_CHAIN_UNTRUSTED', async () => {
    const other = await tlsLeaf();
    const pin = pinOf(tdx);
    pin.doc.tls_chain_der_b64 = [other.derB64];
    await expect(reverifyPin(pin, { testRoots: roots(tdx) })).rejects.toMatchObject({ code: 'ERR_ACI_TLS_KEY' });
    await expect(reverifyPin(pinOf(tdx), {})).rejects.toMatchObject({ code: 'ERR_CHAIN_UNTRUSTED' });
  });

  test('verified at a time after the keyset expired: refused', async () => {
    const pin = pinOf(tdx);
    pin.doc.verified_at = new Date(Date.now() + 40 * 86_400_000).toISOString();
    await expect(reverifyPin(pin, { testRoots: roots(tdx) })).rejects.toMatchObject({ code: 'ERR_ACI_KEYSET_EXPIRED' });
  });
});
