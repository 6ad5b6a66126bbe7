import { randomBytes } from 'node:crypto';
import { beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { TresorError } from '../../src/errors/index.js';
import { loadNitroRoots, parseNitroDocument } from '../../src/evidence/nitro/index.js';
import { parseEnvelope } from '../../src/envelope/parse.js';
import { verifyRouterEnvelope, type EnvelopePolicy } from '../../src/envelope/verify.js';
import { createRouterEvidence, type RouterEvidence } from '../../src/sim/mint/router.js';
import { signTrustBundle } from '../../src/sim/mint/trust.js';
import { verifyTrustBundle } from '../../src/trust/verify-bundle.js';
import { toPem, type Certificate } from '../../src/x509/certificate.js';

const SPKI = 'c3'.repeat(32);
const awsRoots = loadNitroRoots();
let ev: RouterEvidence;
let other: RouterEvidence;
beforeAll(async () => {
  [ev, other] = await Promise.all([createRouterEvidence({ kind: 'nitro' }), createRouterEvidence({ kind: 'nitro' })]);
});
beforeEach(() => {
  for (const k of Object.keys(ev.faults)) delete (ev.faults as Record<string, unknown>)[k];
});

const rootPem = (e: RouterEvidence) => {
  if (!e.nitroPki) throw new Error('not a Nitro simulator');
  return toPem(e.nitroPki.root);
};
const payloadOf = (jws: string) => JSON.parse(Buffer.from(jws.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;

async function check(opts: { nonce?: string; live?: string; policy?: EnvelopePolicy; bundleJws?: string; envelope?: Record<string, unknown>; testRoots?: Certificate[] } = {}) {
  const at = new Date();
  const raw = opts.envelope ?? (await ev.envelope({ spkiSha256: SPKI, ...(opts.nonce ? { nonce: opts.nonce } : {}) }));
  const env = parseEnvelope(Buffer.from(JSON.stringify(raw)));
  const bundle = verifyTrustBundle(opts.bundleJws ?? ev.bundle(), { rootKey: ev.releaseRoot.publicKey, at });
  // The simulator's Nitro root is a test root: allowed here unless a test says otherwise.
  const testRoots = opts.testRoots ?? [ev.nitroPki?.root as Certificate];
  return verifyRouterEnvelope(env, { liveSpkiSha256: opts.live ?? SPKI, bundle, at, nitroRoots: awsRoots, testRoots, ...(opts.nonce ? { nonce: opts.nonce } : {}), ...(opts.policy ? { policy: opts.policy } : {}) });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'pass';
  } catch (e) {
    return (e as TresorError).code;
  }
}

describe('router envelope, Nitro form (nitro_attestation_b64)', () => {
  test('a genuine envelope verifies against the Nitro root the signed bundle carries, and says what it proves', async () => {
    const nonce = randomBytes(32).toString('hex');
    const raw = await ev.envelope({ spkiSha256: SPKI, nonce });
    expect(raw).not.toHaveProperty('snp_report_b64');
    expect(raw).not.toHaveProperty('vcek_chain_pem');
    const doc = parseNitroDocument(Buffer.from(raw.nitro_attestation_b64 as string, 'base64'));
    expect(Buffer.from(doc.nonce as Uint8Array).toString('hex')).toBe(nonce);
    expect(doc.userData).toHaveLength(32);
    const a = await check({ envelope: raw, nonce, policy: { requireNonce: true } });
    expect(a).toMatchObject({ kind: 'nitro', measurement: ev.measurement, tag: ev.tag, spkiSha256: SPKI, bundle: { version: 17 }, nonceBound: true });
    expect(a.pcrs).toMatchObject(ev.pcrs as Record<string, string>);
    expect(Object.keys(a.pcrs ?? {})).toHaveLength(16);
    expect(payloadOf(ev.bundle()).nitro).toMatchObject({ root_pem: rootPem(ev), allowed_pcrs: [ev.pcrs] });
  });

  test.each([
    ['wrongMeasurement', 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED'],
    ['wrongReportData', 'ERR_ATTEST_REPORT_DATA_MISMATCH'],
    ['debugPolicy', 'ERR_POLICY_DEBUG_ENCLAVE'],
    ['tagNotAllowed', 'ERR_ATTEST_TAG_NOT_ALLOWED'],
    ['staleIssuedAt', 'ERR_ATTEST_STALE'],
    ['expiredBundle', 'ERR_BUNDLE_EXPIRED'],
    ['badBundleSignature', 'ERR_BUNDLE_SIGNATURE_INVALID'],
  ] as const)('fault %s fails with %s', async (fault, code) => {
    (ev.faults as Record<string, boolean>)[fault] = true;
    expect(await codeOf(check())).toBe(code);
  });

  test('a debug enclave (all-zero PCR0..2) allowed by policy still fails the PCR allowlist', async () => {
    ev.faults.debugPolicy = true;
    expect(await codeOf(check({ policy: { allowDebug: true } }))).toBe('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED');
  });

  test('nonce: the document must sign the nonce sent, by default (a router without nonce support is refused)', async () => {
    ev.faults.ignoreNonce = true;
    expect(await codeOf(check({ nonce: randomBytes(32).toString('hex') }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    ev.faults.ignoreNonce = false;
    const nonce = randomBytes(32).toString('hex');
    const raw = await ev.envelope({ spkiSha256: SPKI, nonce });
    expect(await codeOf(check({ envelope: raw, nonce: randomBytes(32).toString('hex') }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    // The Nitro document has a signed nonce field: a document without our nonce is a replay candidate, refused without any setting.
    ev.faults.noNonceSupport = true;
    await expect(check({ nonce: randomBytes(32).toString('hex') })).rejects.toThrow(/ERR_ATTEST_NONCE_MISMATCH|signs no nonce/);
    expect(await codeOf(check({ nonce: randomBytes(32).toString('hex') }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    expect(await codeOf(check({ nonce: randomBytes(32).toString('hex'), policy: { requireNonce: true } }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    // No nonce sent (a receipt's embedded envelope checked offline): verified, never nonce-bound.
    expect(await check()).toMatchObject({ nonceBound: false });
  });

  test('user_data binds the live TLS key: a relay with its own key, or evidence bound to another key, is refused', async () => {
    expect(await codeOf(check({ live: 'd4'.repeat(32) }))).toBe('ERR_ATTEST_SPKI_MISMATCH');
    // The envelope claims the live key, but the document binds the original one.
    const raw = await ev.envelope({ spkiSha256: SPKI });
    expect(await codeOf(check({ envelope: { ...raw, tls_spki_sha256: 'd4'.repeat(32) }, live: 'd4'.repeat(32) }))).toBe('ERR_ATTEST_REPORT_DATA_MISMATCH');
  });

  test('the Nitro root comes only from the signed bundle: without nitro.root_pem the AWS root applies, another root does not chain', async () => {
    const p = payloadOf(ev.bundle());
    const { root_pem: _dropped, ...nitro } = p.nitro as Record<string, unknown>;
    const withoutRoot = signTrustBundle(ev.releaseRoot, { ...p, version: 18, nitro });
    expect(await codeOf(check({ bundleJws: withoutRoot }))).toBe('ERR_CHAIN_UNTRUSTED');
    const foreignRoot = signTrustBundle(ev.releaseRoot, { ...p, version: 19, nitro: { ...nitro, root_pem: rootPem(other) } });
    // A root the operator did not allow is refused before any chain is built; allowed, it still does not chain.
    expect(await codeOf(check({ bundleJws: foreignRoot }))).toBe('ERR_BUNDLE_NITRO_ROOT_NOT_PINNED');
    expect(await codeOf(check({ bundleJws: foreignRoot, testRoots: [other.nitroPki?.root as Certificate] }))).toBe('ERR_CHAIN_UNTRUSTED');
    // The simulator's own bundle without its root among the test roots: refused, naming the root.
    await expect(check({ testRoots: [] })).rejects.toMatchObject({ code: 'ERR_BUNDLE_NITRO_ROOT_NOT_PINNED', detail: { field: 'nitro.root_pem', sha256: ev.nitroPki?.root.sha256 } });
    // The AWS root itself, byte for byte, is always acceptable to name.
    const awsNamed = signTrustBundle(ev.releaseRoot, { ...p, version: 21, nitro: { ...nitro, root_pem: toPem(awsRoots[0] as Certificate) } });
    expect(await codeOf(check({ bundleJws: awsNamed, testRoots: [] }))).toBe('ERR_CHAIN_UNTRUSTED');
    // The same root in a bundle the release root did not sign is never reached.
    expect(await codeOf(check({ bundleJws: other.bundle() }))).toBe('ERR_BUNDLE_SIGNATURE_INVALID');
    const badType = signTrustBundle(ev.releaseRoot, { ...p, version: 20, nitro: { ...nitro, root_pem: 42 } });
    expect(await codeOf(check({ bundleJws: badType }))).toBe('ERR_BUNDLE_MALFORMED');
  });
});
