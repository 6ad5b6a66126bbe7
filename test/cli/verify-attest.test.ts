import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { createRouterEvidence, type RouterEvidence } from '../../src/sim/mint/router.js';
import { createEd25519Signer } from '../../src/sim/mint/trust.js';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../../src/sim/mint/test-roots.js';
import { mintAmdCrl } from '../helpers/amd-crl.js';
import { spawnBin } from '../helpers/spawn.js';

let sim: RunningSimulator;
let evidence: RouterEvidence;
let dir: string;
let mitm: tls.Server;
let mitmUrl: string;

beforeAll(async () => {
  evidence = await createRouterEvidence();
  sim = await startSimulator({ evidence });
  dir = await mkdtemp(join(tmpdir(), 'tresor-attest-cli-'));
  await writeFile(join(dir, 'release-root.pub'), evidence.releaseRoot.publicPem);
  await writeFile(join(dir, 'other-root.pub'), createEd25519Signer('other').publicPem);
  await writeFile(join(dir, TEST_ROOTS_FILE), simTestRootsPem({ evidence }));
  // A TLS-terminating relay with its own key in front of the simulator (trusted by the client).
  const id = await generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: 'mitm' });
  await writeFile(join(dir, 'ca.pem'), sim.caPem + id.certPem);
  mitm = tls.createServer({ cert: id.certPem, key: id.keyPem }, (client) => {
    const upstream = tls.connect({ host: '127.0.0.1', port: sim.port, ca: sim.caPem, servername: 'localhost' });
    client.pipe(upstream).pipe(client);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', r));
  mitmUrl = `https://127.0.0.1:${(mitm.address() as AddressInfo).port}`;
});
afterAll(async () => {
  mitm.close();
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

const attestWithout = (...extra: string[]) =>
  spawnBin('tresor-verify', ['attest', '--url', sim.url, '--release-root', join(dir, 'release-root.pub'), '--ca', join(dir, 'ca.pem'), '--bundle', evidence.bundleUrl, ...extra]);
/** The simulator's roots are test roots: allowed explicitly. */
const attest = (...extra: string[]) => attestWithout('--test-roots', join(dir, TEST_ROOTS_FILE), ...extra);

describe('tresor-verify attest', () => {
  test('PASS and the docs lines, against a router whose key is bound to its evidence', async () => {
    const p = attest();
    expect(await p.exited).toBe(0);
    const lines = p.stdout().split('\n');
    expect(lines[0]).toBe('PASS');
    expect(lines[1]).toBe(`TLS SPKI SHA-256:      ${sim.spkiSha256}`);
    expect(lines[2]).toBe(`SNP MEASUREMENT:       ${evidence.measurement}`);
    expect(lines[3]).toBe(`Workload identity tag: ${evidence.tag}`);
    expect(lines[4]).toMatch(/^Trust bundle version:  17 \(valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/);
    expect(lines[5]).toBe('Freshness:             nonce-bound');
    expect(lines[6]).toBe(`Trust roots:           pinned vendor roots and test roots from ${join(dir, TEST_ROOTS_FILE)}`);
    const j = attest('--json');
    expect(await j.exited).toBe(0);
    expect(JSON.parse(j.stdout())).toMatchObject({ ok: true, kind: 'snp', tls_spki_sha256: sim.spkiSha256, trust_bundle: { version: 17 }, freshness: 'nonce-bound', test_roots: true });
  });

  test("the simulator's bundle names its own ARK: refused without --test-roots, naming the root and how to allow it", async () => {
    const p = attestWithout();
    expect(await p.exited).toBe(4);
    expect(p.stdout()).toMatch(/^FAIL ERR_BUNDLE_AMD_ARK_NOT_PINNED: the trust bundle's amd_ark_pem carries .*DER SHA-256 [0-9a-f]{64}.*not an AMD ARK pinned in certs\/.*attestation\.test_roots_file/);
  });

  test('a router that does not sign the nonce: not freshness-bound by default, refused with --require-nonce', async () => {
    evidence.faults.noNonceSupport = true;
    try {
      const p = attest();
      expect(await p.exited).toBe(0);
      expect(p.stdout()).toContain('Freshness:             not freshness-bound\n');
      const strict = attest('--require-nonce');
      expect(await strict.exited).toBe(4);
      expect(strict.stdout()).toMatch(/^FAIL ERR_ATTEST_NONCE_MISMATCH/);
    } finally {
      evidence.faults.noNonceSupport = false;
    }
  });

  test('a man in the middle with its own TLS key relaying the genuine envelope is refused', async () => {
    const p = spawnBin('tresor-verify', ['attest', '--url', mitmUrl, '--release-root', join(dir, 'release-root.pub'), '--ca', join(dir, 'ca.pem'), '--bundle', evidence.bundleUrl, '--test-roots', join(dir, TEST_ROOTS_FILE)]);
    expect(await p.exited).toBe(4);
    expect(p.stdout()).toMatch(/^FAIL ERR_ATTEST_SPKI_MISMATCH/);
  });

  test('a different release root, a bundle location the operator did not allow, an unreachable router', async () => {
    const wrongRoot = spawnBin('tresor-verify', ['attest', '--url', sim.url, '--release-root', join(dir, 'other-root.pub'), '--ca', join(dir, 'ca.pem'), '--bundle', evidence.bundleUrl]);
    expect(await wrongRoot.exited).toBe(4);
    expect(wrongRoot.stdout()).toMatch(/^FAIL ERR_BUNDLE_SIGNATURE_INVALID/);
    const notAllowed = spawnBin('tresor-verify', ['attest', '--url', sim.url, '--release-root', join(dir, 'release-root.pub'), '--ca', join(dir, 'ca.pem')]);
    expect(await notAllowed.exited).toBe(4);
    expect(notAllowed.stdout()).toMatch(/^FAIL ERR_BUNDLE_URL_NOT_ALLOWED/);
    const down = spawnBin('tresor-verify', ['attest', '--url', 'https://127.0.0.1:1', '--release-root', join(dir, 'release-root.pub')]);
    expect(await down.exited).toBe(7);
  });

  test('evidence faults surface as their own codes (policy and verification phases)', async () => {
    evidence.faults.wrongMeasurement = true;
    const m = attest();
    expect(await m.exited).toBe(4);
    expect(m.stdout()).toMatch(/^FAIL ERR_ATTEST_MEASUREMENT_NOT_ALLOWED/);
    evidence.faults.wrongMeasurement = false;
    evidence.faults.debugPolicy = true;
    const d = attest();
    expect(await d.exited).toBe(5);
    expect(d.stdout()).toMatch(/^FAIL ERR_POLICY_DEBUG/);
    evidence.faults.debugPolicy = false;
  });

  test("the signed bundle's snp knobs are policy inputs: a bundle refusing SMT fails a guest that runs with it (exit 5), and --allow-smt does not relax it", async () => {
    evidence.faults.bundleRefusesSmt = true;
    try {
      const s = attest();
      expect(await s.exited).toBe(5);
      expect(s.stdout()).toMatch(/^FAIL ERR_POLICY_SNP_SMT: expected no SMT/);
      const relax = attest('--allow-smt');
      expect(await relax.exited).toBe(5);
      expect(relax.stdout()).toMatch(/^FAIL ERR_POLICY_SNP_SMT: expected no SMT/);
    } finally {
      evidence.faults.bundleRefusesSmt = false;
    }
  });

  test('the SEV-SNP policy flags of `tresor-verify snp` apply to the live evidence (exit 5, the check named)', async () => {
    const smt = attest('--no-allow-smt');
    expect(await smt.exited).toBe(5);
    expect(smt.stdout()).toMatch(/^FAIL ERR_POLICY_SNP_SMT: expected no SMT, got POLICY.SMT 1 and PLATFORM_INFO.SMT_EN 1/);
    const tsme = attest('--require-tsme', '--json');
    expect(await tsme.exited).toBe(5);
    expect(JSON.parse(tsme.stdout())).toMatchObject({ ok: false, error: { code: 'ERR_POLICY_SNP_TSME', phase: 'policy' } });
    const t = (evidence.pki as NonNullable<RouterEvidence['pki']>).tcb;
    const launch = attest('--min-launch-tcb', `bl=${t.bootloader},tee=${t.tee},snp=${t.snp},ucode=${t.microcode + 1}`);
    expect(await launch.exited).toBe(5);
    expect(launch.stdout()).toMatch(/^FAIL ERR_POLICY_SNP_LAUNCH_TCB: LAUNCH_TCB .* is below the floor .*\(microcode\)/);
    const tcb = attest('--min-tcb', `bl=${t.bootloader},tee=${t.tee},snp=${t.snp + 1},ucode=${t.microcode}`);
    expect(await tcb.exited).toBe(5);
    expect(tcb.stdout()).toMatch(/^FAIL ERR_POLICY_TCB: REPORTED_TCB .* is below the floor .*\(snp\)/);
  });

  test("--crl: AMD's CRL (signed by the ARK) listing the ASK refuses the router (exit 4, ERR_CHAIN_REVOKED)", async () => {
    const pki = evidence.pki as NonNullable<RouterEvidence['pki']>;
    await writeFile(join(dir, 'revoking.crl'), await mintAmdCrl(pki, { serials: [pki.ask.parsed.serialNumber] }));
    await writeFile(join(dir, 'clean.crl'), await mintAmdCrl(pki, { serials: ['0abc'] }));
    const clean = attest('--crl', join(dir, 'clean.crl'));
    expect(await clean.exited).toBe(0);
    const revoked = attest('--crl', join(dir, 'revoking.crl'));
    expect(await revoked.exited).toBe(4);
    expect(revoked.stdout()).toMatch(/^FAIL ERR_CHAIN_REVOKED/);
  });

  test('--help lists the SEV-SNP policy flags, each naming its config key', async () => {
    const h = spawnBin('tresor-verify', ['attest', '--help']);
    expect(await h.exited).toBe(0);
    for (const key of ['min-tcb', 'allow-migrate-ma', 'allow-smt', 'require-tsme', 'allow-provisional-firmware', 'crl', 'min-launch-tcb']) {
      expect(h.stdout()).toMatch(new RegExp(`--${key} .*\\(snp\\.${key.replace(/-/g, '_').replace(/^crl$/, 'crl_file')}[;)]`, 's'));
    }
  });
});
