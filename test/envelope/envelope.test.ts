import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { MalformedError, TresorError } from '../../src/errors/index.js';
import { loadNitroRoots } from '../../src/evidence/nitro/index.js';
import { createBundleSource } from '../../src/envelope/attest.js';
import { parseEnvelope } from '../../src/envelope/parse.js';
import { verifyRouterEnvelope, type EnvelopePolicy } from '../../src/envelope/verify.js';
import { createRouterEvidence, type RouterEvidence } from '../../src/sim/mint/router.js';
import { verifyTrustBundle } from '../../src/trust/verify-bundle.js';
import { pinnedAmdArks } from '../../src/evidence/snp/roots.js';
import { signTrustBundle } from '../../src/sim/mint/trust.js';
import { toPem, type Certificate } from '../../src/x509/certificate.js';

const SPKI = 'a1'.repeat(32);
const nitroRoots = loadNitroRoots();
let ev: RouterEvidence;
beforeAll(async () => {
  ev = await createRouterEvidence();
});
beforeEach(() => {
  for (const k of Object.keys(ev.faults)) delete (ev.faults as Record<string, unknown>)[k];
});

/** The simulator's ARK is a test root: allowed here unless a test passes `testRoots: []`. */
const simRoots = () => [ev.pki?.ark as Certificate];

async function check(opts: { nonce?: string; live?: string; policy?: EnvelopePolicy; at?: Date; testRoots?: Certificate[]; bundleJws?: string } = {}) {
  const at = opts.at ?? new Date();
  const env = parseEnvelope(Buffer.from(JSON.stringify(await ev.envelope({ spkiSha256: SPKI, ...(opts.nonce ? { nonce: opts.nonce } : {}) }))));
  const bundle = verifyTrustBundle(opts.bundleJws ?? ev.bundle(), { rootKey: ev.releaseRoot.publicKey, at });
  const testRoots = opts.testRoots ?? simRoots();
  return verifyRouterEnvelope(env, { liveSpkiSha256: opts.live ?? SPKI, bundle, at, nitroRoots, testRoots, ...(opts.nonce ? { nonce: opts.nonce } : {}), ...(opts.policy ? { policy: opts.policy } : {}) });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'pass';
  } catch (e) {
    return (e as TresorError).code;
  }
}

describe('router envelope (tresor.attestation/v1, SNP form)', () => {
  test('a genuine envelope verifies and says what it proves', async () => {
    const nonce = randomBytes(32).toString('hex');
    const a = await check({ nonce, policy: { requireNonce: true } });
    expect(a).toMatchObject({ kind: 'snp', measurement: ev.measurement, tag: ev.tag, spkiSha256: SPKI, bundle: { version: 17 }, manifest: { workload: 'router', version: 'v1.42.3' }, nonceBound: true });
    expect(Date.parse(a.expiresAt) - Date.now()).toBeLessThanOrEqual(600_000);
  });

  test.each([
    ['wrongMeasurement', 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED'],
    ['tagNotAllowed', 'ERR_ATTEST_TAG_NOT_ALLOWED'],
    ['lowTcb', 'ERR_ATTEST_TCB_BELOW_FLOOR'],
    ['wrongReportData', 'ERR_ATTEST_REPORT_DATA_MISMATCH'],
    ['staleIssuedAt', 'ERR_ATTEST_STALE'],
    ['debugPolicy', 'ERR_POLICY_DEBUG'],
    ['emptyVcekChain', 'ERR_ATTEST_NO_VCEK'],
    ['bundleRefusesSmt', 'ERR_POLICY_SNP_SMT'],
    ['expiredBundle', 'ERR_BUNDLE_EXPIRED'],
    ['badBundleSignature', 'ERR_BUNDLE_SIGNATURE_INVALID'],
  ] as const)('fault %s fails with %s', async (fault, code) => {
    (ev.faults as Record<string, boolean>)[fault] = true;
    expect(await codeOf(check())).toBe(code);
  });

  test("SNP policy: the bundle's snp knobs and the config's combine to the stricter; neither loosens the other", async () => {
    const p = JSON.parse(Buffer.from(ev.bundle().split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
    const signed = (snp: Record<string, unknown>, version: number) => signTrustBundle(ev.releaseRoot, { ...p, version, snp });
    const tcb = ev.pki?.tcb as { bootloader: number; tee: number; snp: number; microcode: number };
    // The bundle tightens: SMT refused (the simulated guest runs with SMT), TSME required, a launch TCB floor above the guest's.
    await expect(check({ bundleJws: signed({ allow_smt: false }, 40) })).rejects.toMatchObject({ code: 'ERR_POLICY_SNP_SMT' });
    await expect(check({ bundleJws: signed({ require_tsme: true }, 41) })).rejects.toMatchObject({ code: 'ERR_POLICY_SNP_TSME' });
    await expect(check({ bundleJws: signed({ min_launch_tcb: { ...tcb, microcode: tcb.microcode + 1 } }, 42) })).rejects.toMatchObject({ code: 'ERR_POLICY_SNP_LAUNCH_TCB' });
    await expect(check({ bundleJws: signed({ min_launch_tcb: tcb }, 43) })).resolves.toMatchObject({ kind: 'snp' });
    // A bundle's allow_smt: true does not loosen the config's refusal, nor its min_tcb the config's REPORTED_TCB floor.
    await expect(check({ bundleJws: signed({ allow_smt: true }, 44), policy: { snp: { allowSmt: false } } })).rejects.toMatchObject({ code: 'ERR_POLICY_SNP_SMT' });
    await expect(check({ policy: { snp: { minTcb: `bl=${tcb.bootloader},tee=${tcb.tee},snp=${tcb.snp + 1},ucode=${tcb.microcode}` } } })).rejects.toMatchObject({ code: 'ERR_POLICY_TCB' });
    // Nor does the config's floor loosen the bundle's: a lower config floor, the bundle's min_tcb still refuses.
    ev.faults.lowTcb = true;
    await expect(check({ policy: { snp: { minTcb: 'bl=0,tee=0,snp=0,ucode=0' } } })).rejects.toMatchObject({ code: 'ERR_ATTEST_TCB_BELOW_FLOOR' });
  });

  test('the live TLS key must be the attested one (a relay with its own key is refused)', async () => {
    expect(await codeOf(check({ live: 'b2'.repeat(32) }))).toBe('ERR_ATTEST_SPKI_MISMATCH');
    // A router that binds some other key into its evidence (consistently) still fails on the live key.
    ev.faults.claimSpki = 'b2'.repeat(32);
    expect(await codeOf(check())).toBe('ERR_ATTEST_SPKI_MISMATCH');
  });

  test('nonce: an echoed nonce must be in REPORT_DATA[32:64]; a router that ignores it passes unless a nonce is required', async () => {
    ev.faults.ignoreNonce = true;
    // The envelope echoes the nonce but the evidence does not carry it: refused.
    expect(await codeOf(check({ nonce: randomBytes(32).toString('hex') }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    expect(await codeOf(check({ nonce: randomBytes(32).toString('hex'), policy: { requireNonce: true } }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    ev.faults.ignoreNonce = false;
    expect(await codeOf(check({ policy: { requireNonce: true } }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    // A router without nonce support: accepted by default but said to be not freshness-bound, refused when policy requires a nonce.
    ev.faults.noNonceSupport = true;
    expect(await check({ nonce: randomBytes(32).toString('hex') })).toMatchObject({ nonceBound: false });
    expect(await codeOf(check({ nonce: randomBytes(32).toString('hex'), policy: { requireNonce: true } }))).toBe('ERR_ATTEST_NONCE_MISMATCH');
    // No nonce sent (a receipt's embedded envelope checked offline): never nonce-bound.
    ev.faults.noNonceSupport = false;
    expect(await check()).toMatchObject({ nonceBound: false });
  });

  test("hardware roots are AMD's: a bundle's amd_ark_pem must be a pinned ARK or an operator's test root", async () => {
    // The simulator's bundle names its software ARK: refused unless the operator allowed it as a test root.
    const refused = check({ nonce: randomBytes(32).toString('hex'), testRoots: [] });
    await expect(refused).rejects.toMatchObject({ code: 'ERR_BUNDLE_AMD_ARK_NOT_PINNED', detail: { field: 'amd_ark_pem', sha256: ev.pki?.ark.sha256 } });
    await expect(refused).rejects.toThrow(/not an AMD ARK pinned in certs\/; .*attestation\.test_roots_file/);
    // Another test root allowed does not make this one acceptable.
    const other = await createRouterEvidence();
    await expect(check({ testRoots: [other.pki?.ark as Certificate] })).rejects.toMatchObject({ code: 'ERR_BUNDLE_AMD_ARK_NOT_PINNED' });
    // A bundle naming AMD's real Milan ARK byte for byte passes the root check; the simulator's VCEK then does not chain to it.
    const p = JSON.parse(Buffer.from(ev.bundle().split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
    const realArk = signTrustBundle(ev.releaseRoot, { ...p, version: 30, amd_ark_pem: toPem(pinnedAmdArks()[0] as Certificate) });
    await expect(check({ bundleJws: realArk, testRoots: [] })).rejects.toMatchObject({ code: 'ERR_CHAIN_UNTRUSTED' });
  });

  test('the manifest must hash to the tag', async () => {
    const env = await ev.envelope({ spkiSha256: SPKI });
    const other = await createRouterEvidence();
    const parsed = parseEnvelope(Buffer.from(JSON.stringify({ ...env, workload_identity_manifest_jws: other.manifestJws })));
    const bundle = verifyTrustBundle(ev.bundle(), { rootKey: ev.releaseRoot.publicKey, at: new Date() });
    expect(await codeOf(Promise.resolve().then(() => verifyRouterEnvelope(parsed, { liveSpkiSha256: SPKI, bundle, at: new Date(), nitroRoots, testRoots: simRoots() })))).toBe('ERR_ATTEST_MANIFEST_INVALID');
  });

  test('schema violations are malformed; random input only raises MalformedError', async () => {
    const env = await ev.envelope({ spkiSha256: SPKI });
    for (const bad of [{ ...env, schema: 'tresor.attestation/v2' }, { ...env, tls_spki_sha256: 'AB'.repeat(32) }, { ...env, nitro_attestation_b64: 'AAAA' }, { ...env, snp_report_b64: undefined }, { ...env, max_age_seconds: -1 }]) {
      expect(() => parseEnvelope(Buffer.from(JSON.stringify(bad)))).toThrowError(expect.objectContaining({ code: 'ERR_ATTEST_SCHEMA' }));
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          parseEnvelope(b);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('trust bundle source: what get() would answer from its cache, without a promise', () => {
  test('cached() is the bundle get() returns at once, and undefined whenever get() would fetch (or refuse)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bundle-cached-'));
    try {
      const file = join(dir, 'bundle.jws');
      writeFileSync(file, ev.bundle());
      let now = Date.now();
      const bundles = createBundleSource({ locations: [file], rootKey: ev.releaseRoot.publicKey, clock: () => new Date(now), timeoutMs: 1_000 });
      const url = 'https://router.example/trust-bundle';
      expect(bundles.cached(url)).toBeUndefined();
      const b = await bundles.get(url);
      expect(bundles.cached(url)).toBe(b);
      expect(await bundles.get(url)).toBe(b);
      now += 5 * 60_000; // the cache's age bound: get() fetches again
      expect(bundles.cached(url)).toBeUndefined();
      const remote = createBundleSource({ locations: ['https://bundles.example/b.jws'], rootKey: ev.releaseRoot.publicKey, clock: () => new Date(now), timeoutMs: 1_000 });
      expect(remote.cached('https://elsewhere.example/b.jws')).toBeUndefined();
      await expect(remote.get('https://elsewhere.example/b.jws')).rejects.toMatchObject({ code: 'ERR_BUNDLE_URL_NOT_ALLOWED' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
