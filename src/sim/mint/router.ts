import { createHash, randomBytes } from 'node:crypto';
import { toPem } from '../../x509/certificate.js';
import type { TcbVersion } from '../../evidence/snp/abi.js';
import { createSnpTestPki, mintSnpReport, type SnpTestPki } from './snp.js';
import { createEd25519Signer, signManifest, signTrustBundle, type Ed25519Signer } from './trust.js';

/** Knobs for the simulator's attestation faults (each makes one check of the verifier fail). */
export interface RouterEvidenceFaults {
  wrongMeasurement?: boolean;
  tagNotAllowed?: boolean;
  expiredBundle?: boolean;
  badBundleSignature?: boolean;
  wrongReportData?: boolean;
  ignoreNonce?: boolean;
  /** A router without nonce support: neither echoes the nonce nor puts it in REPORT_DATA. */
  noNonceSupport?: boolean;
  staleIssuedAt?: boolean;
  debugPolicy?: boolean;
  /** Claim this SPKI instead of the live one (a router behind someone else's TLS). */
  claimSpki?: string;
  lowTcb?: boolean;
  emptyVcekChain?: boolean;
}

export interface RouterEvidence {
  releaseRoot: Ed25519Signer;
  pki: SnpTestPki;
  measurement: string;
  tag: string;
  manifestJws: string;
  bundleVersion: number;
  /** The compact JWS trust bundle currently published. */
  bundle(): string;
  /** A fresh signed envelope for the live TLS key. */
  envelope(ctx: { spkiSha256: string; nonce?: string }): Promise<Record<string, unknown>>;
  faults: RouterEvidenceFaults;
  /** Publish a bundle with this version (rollback tests). */
  setBundleVersion(v: number): void;
  /** Where the envelope says the bundle is (set once the simulator knows its own URL). */
  bundleUrl: string;
}

/** Everything a simulated Tresor router needs to prove what it runs (SNP form). */
export async function createRouterEvidence(opts: { now?: () => Date; bundleUrl?: string; tcb?: TcbVersion } = {}): Promise<RouterEvidence> {
  const now = opts.now ?? (() => new Date());
  const releaseRoot = createEd25519Signer('tresor-release-root-sim');
  const identity = createEd25519Signer('tresor-workload-identity-sim');
  const pki = await createSnpTestPki({ product: 'milan', now: now(), ...(opts.tcb ? { tcb: opts.tcb } : {}) });
  const measurement = createHash('sha384').update('tresor-router v1.42.3 (simulated)').digest();
  const { jws: manifestJws, tag } = signManifest(identity);
  const faults: RouterEvidenceFaults = {};
  let bundleVersion = 17;
  // A published bundle is stable: the same version always has the same bytes (a verifier with a
  // rollback store refuses two different bundles claiming one version).
  const published = new Map<string, string>();
  const bundle = () => {
    const key = JSON.stringify([bundleVersion, faults.badBundleSignature, faults.expiredBundle, faults.tagNotAllowed, faults.lowTcb]);
    const hit = published.get(key);
    if (hit) return hit;
    const jws = signBundle();
    published.set(key, jws);
    return jws;
  };
  const signBundle = () => {
    const t = now().getTime();
    const signer = faults.badBundleSignature ? createEd25519Signer(releaseRoot.kid) : releaseRoot;
    return signTrustBundle(signer, {
      version: bundleVersion,
      issued_at: new Date(t - 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      valid_until: new Date(faults.expiredBundle ? t - 1000 : t + 30 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      allowed_hw_measurements: [measurement.toString('hex')],
      allowed_workload_identity_tags: faults.tagNotAllowed ? ['00'.repeat(32)] : [tag],
      min_tcb: { bootloader: pki.tcb.bootloader, tee: pki.tcb.tee, snp: pki.tcb.snp, microcode: faults.lowTcb ? pki.tcb.microcode + 1 : pki.tcb.microcode },
      amd_ark_pem: toPem(pki.ark),
      workload_identity_keys: [identity.publicJwk],
    });
  };
  const evidence: RouterEvidence = {
    releaseRoot,
    pki,
    measurement: measurement.toString('hex'),
    tag,
    manifestJws,
    get bundleVersion() {
      return bundleVersion;
    },
    bundle,
    faults,
    setBundleVersion: (v) => (bundleVersion = v),
    bundleUrl: opts.bundleUrl ?? 'https://trust.tresor.co/api/router.json',
    async envelope(ctx) {
      const spki = faults.claimSpki ?? ctx.spkiSha256;
      const binding = createHash('sha256').update(Buffer.from(spki, 'hex')).update(Buffer.from(tag, 'hex')).digest();
      const nonce = faults.noNonceSupport ? undefined : ctx.nonce;
      const reportData = Buffer.concat([faults.wrongReportData ? randomBytes(32) : binding, nonce && !faults.ignoreNonce ? Buffer.from(nonce, 'hex') : Buffer.alloc(32)]);
      const report = mintSnpReport(pki, {
        measurement: faults.wrongMeasurement ? randomBytes(48) : measurement,
        reportData,
        policy: faults.debugPolicy ? 0x30000n | (1n << 19n) : 0x30000n,
      });
      const issued = new Date(now().getTime() - (faults.staleIssuedAt ? 3_600_000 : 0));
      return {
        schema: 'tresor.attestation/v1',
        workload: 'router',
        snp_report_b64: Buffer.from(report).toString('base64'),
        vcek_chain_pem: faults.emptyVcekChain ? '' : `${toPem(pki.vcek)}${toPem(pki.ask)}`,
        tls_spki_sha256: spki,
        workload_identity_tag: tag,
        workload_identity_manifest_jws: manifestJws,
        trust_bundle_url: evidence.bundleUrl,
        issued_at: issued.toISOString().replace(/\.\d+Z$/, 'Z'),
        max_age_seconds: 600,
        ...(nonce ? { nonce } : {}),
      };
    },
  };
  return evidence;
}
