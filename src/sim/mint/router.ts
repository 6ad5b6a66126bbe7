import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { toPem } from '../../x509/certificate.js';
import type { TcbVersion } from '../../evidence/snp/abi.js';
import { createNitroTestPki, mintNitroDocument, renewNitroLeaf, type NitroTestPki } from './nitro.js';
import { createSnpTestPki, mintSnpReport, type SnpTestPki } from './snp.js';
import { createEd25519Signer, signManifest, signTrustBundle, type Ed25519Signer } from './trust.js';

export type EvidenceKind = 'snp' | 'nitro';

/**
 * Knobs for the simulator's attestation faults (each makes one check of the verifier fail).
 * In the Nitro form, "measurement" is PCR0, "report data" is `user_data` and the debug policy is
 * all-zero PCR0..2; `lowTcb`, `emptyVcekChain` and `bundleRefusesSmt` exist only in the SNP form.
 */
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
  /** Publish (as a new version) a bundle whose `valid_until` is 5 s after it is signed: it expires while a daemon runs. */
  bundleEndsSoon?: boolean;
  /** Claim this SPKI instead of the live one (a router behind someone else's TLS). */
  claimSpki?: string;
  lowTcb?: boolean;
  emptyVcekChain?: boolean;
  /** Publish (as a new version) a bundle whose `snp.allow_smt` is false; the simulated guest runs with SMT. */
  bundleRefusesSmt?: boolean;
}

/** The on/off faults by name (`tresor-attest sim --attestation-fault NAME`); `claimSpki` takes a value and is code-only. */
export const ATTESTATION_FAULTS = [
  'wrongMeasurement',
  'tagNotAllowed',
  'expiredBundle',
  'badBundleSignature',
  'wrongReportData',
  'ignoreNonce',
  'noNonceSupport',
  'staleIssuedAt',
  'debugPolicy',
  'bundleEndsSoon',
  'lowTcb',
  'emptyVcekChain',
  'bundleRefusesSmt',
] as const satisfies readonly (keyof RouterEvidenceFaults)[];
export type AttestationFaultName = (typeof ATTESTATION_FAULTS)[number];
/** Fault names that apply to the SNP form only. */
export const SNP_ONLY_FAULTS: readonly AttestationFaultName[] = ['lowTcb', 'emptyVcekChain', 'bundleRefusesSmt'];

export interface RouterEvidence {
  kind: EvidenceKind;
  releaseRoot: Ed25519Signer;
  /** The AMD-like PKI (SNP form). */
  pki?: SnpTestPki;
  /** The AWS-Nitro-like PKI (Nitro form). */
  nitroPki?: NitroTestPki;
  /** SNP MEASUREMENT, or Nitro PCR0 (lowercase hex). */
  measurement: string;
  /** Nitro form: the PCR0..2 the bundle allows (index → hex). */
  pcrs?: Readonly<Record<string, string>>;
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

/**
 * Keys kept across simulator restarts (`tresor-attest sim --keys-dir`): the release root and the
 * workload identity key, and the bundle version this run publishes (one more than the last run's,
 * since its bundle carries freshly minted AMD/Nitro test roots: the same version with other bytes
 * would be an equivocation).
 */
export interface SimKeys {
  releaseRoot: KeyObject;
  identity: KeyObject;
  bundleVersion: number;
}

/** Everything a simulated Tresor router needs to prove what it runs, in the SNP (default) or Nitro form. */
export async function createRouterEvidence(
  opts: { kind?: EvidenceKind; now?: () => Date; bundleUrl?: string; tcb?: TcbVersion; keys?: SimKeys } = {},
): Promise<RouterEvidence> {
  const kind = opts.kind ?? 'snp';
  const now = opts.now ?? (() => new Date());
  const releaseRoot = createEd25519Signer('tresor-release-root-sim', opts.keys?.releaseRoot);
  const identity = createEd25519Signer('tresor-workload-identity-sim', opts.keys?.identity);
  const pki = kind === 'snp' ? await createSnpTestPki({ product: 'milan', now: now(), ...(opts.tcb ? { tcb: opts.tcb } : {}) }) : undefined;
  const nitroPki = kind === 'nitro' ? await createNitroTestPki({ now: now() }) : undefined;
  const image = 'tresor-router v1.42.3 (simulated)';
  const measurement = createHash('sha384').update(image).digest();
  // Nitro: PCR0 image, PCR1 kernel and boot ramfs, PCR2 application, PCR3 IAM role, PCR4 instance;
  // PCR5..15 are zero, as in real documents.
  const pcrs = new Map<number, Buffer>(Array.from({ length: 16 }, (_, i) => [i, i === 0 ? measurement : i <= 4 ? createHash('sha384').update(`${image} PCR${i}`).digest() : Buffer.alloc(48)]));
  const allowedPcrs = { 0: (pcrs.get(0) as Buffer).toString('hex'), 1: (pcrs.get(1) as Buffer).toString('hex'), 2: (pcrs.get(2) as Buffer).toString('hex') };
  const { jws: manifestJws, tag } = signManifest(identity);
  const faults: RouterEvidenceFaults = {};
  let bundleVersion = opts.keys?.bundleVersion ?? 17;
  // A published bundle is stable: the same version always has the same bytes (a verifier with a
  // rollback store refuses two different bundles claiming one version). When faults change what
  // the bundle says (a revocation: tagNotAllowed, lowTcb, ...), the change is published under the
  // next version, as a release team would, unless a test set the version itself.
  const published = new Map<string, string>();
  let last: { version: number; content: string } | undefined;
  const bundle = () => {
    const content = JSON.stringify([faults.badBundleSignature, faults.expiredBundle, faults.tagNotAllowed, faults.lowTcb, faults.bundleEndsSoon, faults.bundleRefusesSmt]);
    if (last && last.content !== content && last.version === bundleVersion) bundleVersion++;
    last = { version: bundleVersion, content };
    const key = JSON.stringify([bundleVersion, content]);
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
      valid_until: new Date(faults.expiredBundle ? t - 1000 : faults.bundleEndsSoon ? t + 5000 : t + 30 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      allowed_hw_measurements: pki ? [measurement.toString('hex')] : [],
      allowed_workload_identity_tags: faults.tagNotAllowed ? ['00'.repeat(32)] : [tag],
      ...(pki
        ? {
            min_tcb: { bootloader: pki.tcb.bootloader, tee: pki.tcb.tee, snp: pki.tcb.snp, microcode: faults.lowTcb ? pki.tcb.microcode + 1 : pki.tcb.microcode },
            amd_ark_pem: toPem(pki.ark),
            ...(faults.bundleRefusesSmt ? { snp: { allow_smt: false } } : {}),
          }
        : {}),
      ...(nitroPki ? { nitro: { allowed_pcrs: [allowedPcrs], root_pem: toPem(nitroPki.root) } } : {}),
      workload_identity_keys: [identity.publicJwk],
    });
  };
  /** The evidence proper: an SNP report + VCEK chain, or a Nitro document. */
  const mintEvidence = async (binding: Buffer, nonce: string | undefined): Promise<Record<string, string>> => {
    const echo = nonce && !faults.ignoreNonce ? Buffer.from(nonce, 'hex') : undefined;
    const bound = faults.wrongReportData ? randomBytes(32) : binding;
    if (nitroPki) {
      const at = now();
      await renewNitroLeaf(nitroPki, at);
      const docPcrs = new Map(pcrs);
      if (faults.wrongMeasurement) docPcrs.set(0, randomBytes(48));
      if (faults.debugPolicy) for (const i of [0, 1, 2]) docPcrs.set(i, Buffer.alloc(48));
      const doc = mintNitroDocument(nitroPki, { pcrs: docPcrs, timestamp: at.getTime(), userData: bound, ...(echo ? { nonce: echo } : {}) });
      return { nitro_attestation_b64: Buffer.from(doc).toString('base64') };
    }
    const snp = pki as SnpTestPki;
    const report = mintSnpReport(snp, {
      measurement: faults.wrongMeasurement ? randomBytes(48) : measurement,
      reportData: Buffer.concat([bound, echo ?? Buffer.alloc(32)]),
      policy: faults.debugPolicy ? 0x30000n | (1n << 19n) : 0x30000n,
    });
    return {
      snp_report_b64: Buffer.from(report).toString('base64'),
      vcek_chain_pem: faults.emptyVcekChain ? '' : `${toPem(snp.vcek)}${toPem(snp.ask)}`,
    };
  };
  const evidence: RouterEvidence = {
    kind,
    releaseRoot,
    ...(pki ? { pki } : {}),
    ...(nitroPki ? { nitroPki, pcrs: allowedPcrs } : {}),
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
      const issued = new Date(now().getTime() - (faults.staleIssuedAt ? 3_600_000 : 0));
      return {
        schema: 'tresor.attestation/v1',
        workload: 'router',
        ...(await mintEvidence(binding, nonce)),
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
