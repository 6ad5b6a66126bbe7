import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MalformedError, TresorError } from '../../src/errors/index.js';
import { createEd25519Signer, signJws, signManifest, signTrustBundle } from '../../src/sim/mint/trust.js';
import { loadReleaseRootKey } from '../../src/trust/release-root.js';
import { RollbackStore } from '../../src/trust/rollback.js';
import { verifyTrustBundle } from '../../src/trust/verify-bundle.js';
import { manifestTag, verifyManifest } from '../../src/trust/verify-manifest.js';

const root = createEd25519Signer('release-root-1');
const identity = createEd25519Signer('workload-identity-1');
const NOW = new Date('2026-04-10T00:00:00Z');
const payload = (extra: Record<string, unknown> = {}) => ({
  version: 17,
  issued_at: '2026-04-01T00:00:00Z',
  valid_until: '2026-05-01T00:00:00Z',
  allowed_hw_measurements: ['ab'.repeat(48)],
  allowed_workload_identity_tags: ['cd'.repeat(32)],
  min_tcb: { bootloader: 2, tee: 0, snp: 5, microcode: 68 },
  nitro: { allowed_pcrs: [{ '0': 'ef'.repeat(48) }] },
  workload_identity_keys: [identity.publicJwk],
  ...extra,
});
const code = (f: () => unknown) => {
  try {
    f();
    return 'pass';
  } catch (e) {
    return (e as TresorError).code;
  }
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-trust-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('release-root key', () => {
  test('PEM, JWK and raw hex all load to the same key; anything else is refused', () => {
    const hex = Buffer.from(root.publicJwk.x, 'base64url').toString('hex');
    for (const form of [root.publicPem, JSON.stringify(root.publicJwk), hex, `${hex.slice(0, 32)}\n${hex.slice(32)}\n`]) {
      const key = loadReleaseRootKey(Buffer.from(form));
      expect(key.export({ format: 'jwk' }).x).toBe(root.publicJwk.x);
    }
    for (const bad of ['', 'not a key', 'ab'.repeat(31), JSON.stringify({ kty: 'EC' })]) {
      expect(code(() => loadReleaseRootKey(Buffer.from(bad)))).toBe('ERR_RELEASE_ROOT_KEY');
    }
  });
});

describe('trust bundle', () => {
  test('verifies with the pinned root; exposes the allowlists', () => {
    const b = verifyTrustBundle(signTrustBundle(root, payload()), { rootKey: root.publicKey, at: NOW });
    expect(b.version).toBe(17);
    expect(b.allowedMeasurements).toEqual(['ab'.repeat(48)]);
    expect(b.minTcb).toEqual({ bootloader: 2, tee: 0, snp: 5, microcode: 68 });
    expect(b.workloadIdentityKeys.has('workload-identity-1')).toBe(true);
  });

  test('another key, another algorithm, an expired bundle, a tampered payload, a bad schema: each its own code', () => {
    const other = createEd25519Signer('x');
    expect(code(() => verifyTrustBundle(signTrustBundle(other, payload()), { rootKey: root.publicKey, at: NOW }))).toBe('ERR_BUNDLE_SIGNATURE_INVALID');
    expect(code(() => verifyTrustBundle(signJws(root, { alg: 'ES256', typ: 'tresor-trust-bundle+jws' }, payload()), { rootKey: root.publicKey, at: NOW }))).toBe('ERR_BUNDLE_ALG_NOT_ALLOWED');
    expect(code(() => verifyTrustBundle(signTrustBundle(root, payload()), { rootKey: root.publicKey, at: new Date('2026-05-01T00:00:01Z') }))).toBe('ERR_BUNDLE_EXPIRED');
    const [h, , s] = signTrustBundle(root, payload()).split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ schema: 'tresor.trust-bundle/v1', ...payload({ version: 99 }) })).toString('base64url')}.${s}`;
    expect(code(() => verifyTrustBundle(forged, { rootKey: root.publicKey, at: NOW }))).toBe('ERR_BUNDLE_SIGNATURE_INVALID');
    expect(code(() => verifyTrustBundle(signTrustBundle(root, payload({ allowed_hw_measurements: ['AB'.repeat(48)] })), { rootKey: root.publicKey, at: NOW }))).toBe('ERR_BUNDLE_MALFORMED');
    expect(code(() => verifyTrustBundle(signJws(root, { typ: 'JWT' }, payload()), { rootKey: root.publicKey, at: NOW }))).toBe('ERR_BUNDLE_MALFORMED');
    // An empty PCR set would allow any enclave.
    expect(() => verifyTrustBundle(signTrustBundle(root, payload({ nitro: { allowed_pcrs: [{}] } })), { rootKey: root.publicKey, at: NOW })).toThrowError(
      expect.objectContaining({ code: 'ERR_BUNDLE_MALFORMED', message: expect.stringContaining('nitro.allowed_pcrs[0] is empty') }),
    );
  });

  test("the snp policy knobs: parsed into the bundle, absent means none; a wrong type or an unknown key is malformed", () => {
    const b = verifyTrustBundle(signTrustBundle(root, payload({ snp: { allow_smt: false, require_tsme: true, allow_migrate_ma: true, allow_provisional_firmware: false, min_launch_tcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 } } })), { rootKey: root.publicKey, at: NOW });
    expect(b.snp).toEqual({ allowSmt: false, requireTsme: true, allowMigrateMa: true, allowProvisionalFirmware: false, minLaunchTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 } });
    expect(verifyTrustBundle(signTrustBundle(root, payload()), { rootKey: root.publicKey, at: NOW }).snp).toEqual({});
    for (const snp of [[], 'x', { allow_smt: 'no' }, { allow_debug: true }, { min_launch_tcb: { bootloader: 300, tee: 0, snp: 0, microcode: 0 } }]) {
      expect(() => verifyTrustBundle(signTrustBundle(root, payload({ snp })), { rootKey: root.publicKey, at: NOW })).toThrow(expect.objectContaining({ code: 'ERR_BUNDLE_MALFORMED' }));
    }
  });
  test('rollback: the highest version is persisted (0600) and a lower one is refused, also by a new store', async () => {
    const path = join(dir, 'state', 'trust-bundles.json');
    const store = await RollbackStore.open(path);
    const v17 = verifyTrustBundle(signTrustBundle(root, payload()), { rootKey: root.publicKey, at: NOW });
    const v18 = verifyTrustBundle(signTrustBundle(root, payload({ version: 18 })), { rootKey: root.publicKey, at: NOW });
    await store.accept('https://trust.example/router.json', v18);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const reopened = await RollbackStore.open(path);
    expect(reopened.highest('https://trust.example/router.json')).toBe(18);
    await expect(reopened.accept('https://trust.example/router.json', v17)).rejects.toMatchObject({ code: 'ERR_BUNDLE_ROLLBACK' });
    const other18 = verifyTrustBundle(signTrustBundle(root, payload({ version: 18, allowed_hw_measurements: [] })), { rootKey: root.publicKey, at: NOW });
    await expect(reopened.accept('https://trust.example/router.json', other18)).rejects.toMatchObject({ code: 'ERR_BUNDLE_EQUIVOCATION' });
    await expect(reopened.accept('https://trust.example/router.json', v18)).resolves.toBeUndefined();
  });

  test('random input to the bundle parser only raises typed errors', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        try {
          verifyTrustBundle(s, { rootKey: root.publicKey, at: NOW });
        } catch (e) {
          expect(e).toBeInstanceOf(TresorError);
          expect(['malformed', 'verify']).toContain((e as TresorError).phase);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('workload identity manifest', () => {
  const bundle = verifyTrustBundle(signTrustBundle(root, payload()), { rootKey: root.publicKey, at: NOW });

  test('verifies with a bundle-listed key; its tag is SHA-256 of the compact JWS', () => {
    const { jws, tag } = signManifest(identity);
    const m = verifyManifest(jws, bundle);
    expect(m).toMatchObject({ workload: 'router', version: 'v1.42.3', tag, kid: 'workload-identity-1' });
    expect(manifestTag(jws)).toMatch(/^[0-9a-f]{64}$/);
  });

  test('an unlisted key, a bad signature or a wrong schema is refused', () => {
    expect(code(() => verifyManifest(signManifest(createEd25519Signer('workload-identity-1')).jws, bundle))).toBe('ERR_ATTEST_MANIFEST_INVALID');
    expect(code(() => verifyManifest(signManifest(createEd25519Signer('other')).jws, bundle))).toBe('ERR_ATTEST_MANIFEST_INVALID');
    expect(code(() => verifyManifest(signManifest(identity, { schema: 'workload-identity/v2' }).jws, bundle))).toBe('ERR_MANIFEST_MALFORMED');
    expect(() => verifyManifest('a.b', bundle)).toThrowError(MalformedError);
  });
});
