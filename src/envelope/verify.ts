import { createHash } from 'node:crypto';
import { VerificationError } from '../errors/index.js';
import { evaluateNitroPolicy, parseNitroDocument, verifyNitroDocument } from '../evidence/nitro/index.js';
import type { Crl } from '../x509/crl.js';
import { evaluateSnpPolicy, formatTcb, parseSnpReport, stricterSnpPolicy, verifySnpReport, type SnpPolicy } from '../evidence/snp/index.js';
import { tcbBelow } from '../evidence/snp/policy.js';
import { pinnedAmdArks } from '../evidence/snp/roots.js';
import { checkBundleRoots } from '../trust/bundle-roots.js';
import { asVerified, type Verified } from '../types.js';
import { bytesEqual, hexEqual, toHex } from '../util/bytes.js';
import { parsePemCertificates, type Certificate } from '../x509/certificate.js';
import type { TrustBundle } from '../trust/verify-bundle.js';
import { verifyManifest } from '../trust/verify-manifest.js';
import type { RouterEnvelope } from './parse.js';

/** What a verified envelope proves. */
export interface RouterAttestation {
  readonly kind: 'snp' | 'nitro';
  /** SNP MEASUREMENT or Nitro PCR0 (hex). */
  readonly measurement: string;
  readonly pcrs?: Readonly<Record<string, string>>;
  readonly tag: string;
  readonly spkiSha256: string;
  readonly manifest: { workload: string; version: string; imageDigest: string };
  readonly bundle: { version: number; validUntil: string; receiptSigningKeys?: { thumbprints?: readonly string[]; kids?: readonly string[] } };
  readonly issuedAt: string;
  /** min(issued_at + max_age_seconds, bundle valid_until, our cap). */
  readonly expiresAt: string;
  /** The signed evidence carries the nonce we sent (SNP REPORT_DATA[32:64], Nitro `nonce`): it is fresh, not a replay. */
  readonly nonceBound: boolean;
}

export interface EnvelopePolicy {
  allowDebug?: boolean;
  /** SEV-SNP guest and platform policy (MIGRATE_MA, SMT, TSME, provisional firmware, launch and reported TCB floors); the bundle's `snp` can only tighten it. */
  snp?: Omit<SnpPolicy, 'allowDebug' | 'measurements' | 'reportData' | 'reportDataPrefix' | 'reportDataSuffix'>;
  /** AMD's CRL, when configured (`snp.crl_file`). */
  snpCrl?: (() => Crl) | undefined;
  requireNonce?: boolean;
  /** Our own cap on max_age_seconds. */
  maxAgeCapSeconds?: number;
  /** Tolerated clock skew for issued_at. */
  skewSeconds?: number;
}

export interface EnvelopeContext {
  /** SHA-256 (hex) of the SPKI of the TLS connection the envelope came over. */
  liveSpkiSha256: string;
  bundle: Verified<TrustBundle>;
  /** The nonce we sent (hex), if any. */
  nonce?: string;
  at: Date;
  /** Nitro roots to use when the bundle carries none (`nitro.root_pem`): the pinned AWS Nitro root. */
  nitroRoots: readonly Certificate[];
  /** The operator's test roots (`attestation.test_roots_file`): roots a bundle may name besides the pinned ones. */
  testRoots?: readonly Certificate[];
  policy?: EnvelopePolicy;
}

const fail = (code: string, msg: string) => new VerificationError(code, msg);

/**
 * The verifier algorithm of the router docs (§1.4), in order: evidence chain and signature;
 * MEASUREMENT (or the Nitro PCR set) allowed by the bundle; the identity tag allowed, equal to
 * SHA-256 of the manifest, the manifest signed by a bundle key; REPORTED_TCB ≥ min_tcb; the
 * report data binding SHA-256(spki ‖ tag); the nonce echo; the live TLS key; freshness.
 */
export function verifyRouterEnvelope(env: RouterEnvelope, ctx: EnvelopeContext): Verified<RouterAttestation> {
  const p = ctx.policy ?? {};
  const bundle = ctx.bundle;
  const binding = createHash('sha256').update(Buffer.from(env.tlsSpkiSha256, 'hex')).update(Buffer.from(env.workloadIdentityTag, 'hex')).digest();
  const nonceBytes = ctx.nonce ? Buffer.from(ctx.nonce, 'hex') : undefined;
  if (p.requireNonce && !nonceBytes) throw fail('ERR_ATTEST_NONCE_MISMATCH', 'policy requires a nonce, but none was sent');
  if (nonceBytes && env.nonce !== undefined && !hexEqual(env.nonce, ctx.nonce as string)) {
    throw fail('ERR_ATTEST_NONCE_MISMATCH', 'the envelope echoes a different nonce than the one sent');
  }
  const echoedNonce = nonceBytes !== undefined && env.nonce !== undefined;
  // The bundle may name roots, never add one: each must be a pinned vendor root or an operator's test root.
  checkBundleRoots(bundle, { amdArks: pinnedAmdArks(), nitroRoots: ctx.nitroRoots, testRoots: ctx.testRoots });
  let nonceBound = false;

  let measurement: string;
  let pcrs: Record<string, string> | undefined;
  if (env.evidence.kind === 'snp') {
    const certs = parsePemCertificates(env.evidence.vcekChainPem, 'vcek_chain_pem');
    const [vcek, ...rest] = certs;
    if (!vcek) throw fail('ERR_ATTEST_NO_VCEK', 'vcek_chain_pem is empty (dev mode?): the report cannot be verified without its VCEK');
    const crl = p.snpCrl?.();
    const report = verifySnpReport(parseSnpReport(env.evidence.report), {
      vcek,
      chain: rest.filter((c) => !bundle.amdArks.some((a) => a.sha256 === c.sha256)),
      ...(bundle.amdArks.length ? { arks: bundle.amdArks } : {}),
      ...(crl ? { crl } : {}),
      at: ctx.at,
    });
    measurement = toHex(report.MEASUREMENT);
    // The bundle's `snp` knobs and the config's: the stricter of the two, knob by knob.
    evaluateSnpPolicy(report, { ...stricterSnpPolicy(p.snp ?? {}, bundle.snp, report.product), allowDebug: p.allowDebug ?? false });
    if (!bundle.allowedMeasurements.includes(measurement)) throw fail('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', `SNP MEASUREMENT ${measurement} is not in the trust bundle's allowed_hw_measurements`);
    if (bundle.minTcb) {
      const low = tcbBelow(report.reportedTcb, bundle.minTcb);
      if (low.length) throw fail('ERR_ATTEST_TCB_BELOW_FLOOR', `REPORTED_TCB ${formatTcb(report.reportedTcb)} is below the bundle's min_tcb ${formatTcb(bundle.minTcb)}`);
    }
    if (!bytesEqual(report.REPORT_DATA.subarray(0, 32), binding)) {
      throw fail('ERR_ATTEST_REPORT_DATA_MISMATCH', 'REPORT_DATA[0:32] is not SHA-256(tls_spki_sha256 ‖ workload_identity_tag)');
    }
    // The docs do not define REPORT_DATA[32:64]. Evidence carrying our nonce there is nonce-bound; a
    // router that echoes the nonce must carry it; one that does not is refused only when policy
    // requires a nonce, else accepted as not freshness-bound (the pin says so).
    nonceBound = nonceBytes !== undefined && bytesEqual(report.REPORT_DATA.subarray(32, 64), nonceBytes);
    if (nonceBytes && !nonceBound && (echoedNonce || p.requireNonce)) {
      throw fail('ERR_ATTEST_NONCE_MISMATCH', 'REPORT_DATA[32:64] does not carry the nonce sent');
    }
  } else {
    const doc = verifyNitroDocument(parseNitroDocument(env.evidence.document), { at: ctx.at, roots: bundle.nitroRoots.length ? bundle.nitroRoots : ctx.nitroRoots });
    evaluateNitroPolicy(doc, { allowDebug: p.allowDebug ?? false, maxAgeSeconds: p.maxAgeCapSeconds ?? 600 }, { at: ctx.at });
    pcrs = Object.fromEntries([...doc.pcrs].map(([i, v]) => [String(i), toHex(v)]));
    measurement = pcrs['0'] ?? '';
    const allowed = bundle.nitroAllowedPcrs.some((set) => Object.entries(set).every(([i, h]) => pcrs?.[i] === h));
    if (!allowed) throw fail('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', `Nitro PCRs (PCR0 ${measurement}) match none of the trust bundle's allowed PCR sets`);
    if (!doc.userData || !bytesEqual(doc.userData, binding)) throw fail('ERR_ATTEST_REPORT_DATA_MISMATCH', 'Nitro user_data is not SHA-256(tls_spki_sha256 ‖ workload_identity_tag)');
    // The Nitro document has a signed `nonce` field: a nonce we sent is required in it, always.
    if (nonceBytes && (!doc.nonce || !bytesEqual(doc.nonce, nonceBytes))) {
      throw fail('ERR_ATTEST_NONCE_MISMATCH', doc.nonce ? 'the Nitro document signs another nonce than the one sent' : 'the Nitro document signs no nonce, but one was sent (a replayed or unchallenged document)');
    }
    nonceBound = nonceBytes !== undefined;
  }

  if (!bundle.allowedTags.includes(env.workloadIdentityTag)) throw fail('ERR_ATTEST_TAG_NOT_ALLOWED', `workload identity tag ${env.workloadIdentityTag} is not in the trust bundle's allowed_workload_identity_tags`);
  const manifest = verifyManifest(env.manifestJws, bundle);
  if (manifest.tag !== env.workloadIdentityTag) throw fail('ERR_ATTEST_TAG_MISMATCH', 'workload_identity_tag is not SHA-256 of workload_identity_manifest_jws');
  if (!hexEqual(env.tlsSpkiSha256, ctx.liveSpkiSha256)) {
    throw fail('ERR_ATTEST_SPKI_MISMATCH', `the live TLS key ${ctx.liveSpkiSha256} is not the attested tls_spki_sha256 ${env.tlsSpkiSha256}`);
  }
  const skew = (p.skewSeconds ?? 300) * 1000;
  const maxAge = Math.min(env.maxAgeSeconds, p.maxAgeCapSeconds ?? 3600) * 1000;
  const issued = env.issuedAt.getTime();
  if (issued - skew > ctx.at.getTime()) throw fail('ERR_ATTEST_STALE', `issued_at ${env.issuedAt.toISOString()} is in the future`);
  if (ctx.at.getTime() > issued + maxAge + skew) throw fail('ERR_ATTEST_STALE', `the envelope issued at ${env.issuedAt.toISOString()} is older than its max age`);
  const expires = Math.min(issued + maxAge, bundle.validUntil.getTime());
  return asVerified({
    kind: env.evidence.kind,
    measurement,
    ...(pcrs ? { pcrs } : {}),
    tag: env.workloadIdentityTag,
    spkiSha256: env.tlsSpkiSha256,
    manifest: { workload: manifest.workload, version: manifest.version, imageDigest: manifest.imageDigest },
    bundle: { version: bundle.version, validUntil: bundle.validUntil.toISOString(), ...(bundle.receiptSigningKeys ? { receiptSigningKeys: bundle.receiptSigningKeys } : {}) },
    issuedAt: env.issuedAt.toISOString(),
    expiresAt: new Date(expires).toISOString(),
    nonceBound,
  });
}
