import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { MalformedError, VerificationError } from '../errors/index.js';
import { parseTcbSpec, type TcbVersion } from '../evidence/snp/abi.js';
import type { SnpKnobs } from '../evidence/snp/policy.js';
import { asVerified, type Verified } from '../types.js';
import { parseJws } from '../util/jws.js';
import { parsePemCertificates, type Certificate } from '../x509/certificate.js';

/** Bound on a trust bundle JWS. */
export const MAX_BUNDLE_BYTES = 256 * 1024;
export const BUNDLE_SCHEMA = 'tresor.trust-bundle/v1';
export const BUNDLE_TYP = 'tresor-trust-bundle+jws';

/** The trust bundle payload (docs/wire.md §5), validated. */
export interface TrustBundle {
  readonly version: number;
  readonly issuedAt: Date;
  readonly validUntil: Date;
  readonly allowedMeasurements: readonly string[];
  readonly allowedTags: readonly string[];
  readonly minTcb?: TcbVersion;
  /** SEV-SNP guest and platform policy the release signs (`snp`): tightens the per-upstream `snp:` config, never loosens it. */
  readonly snp: SnpKnobs;
  /** ARK(s) the VCEK chain must end at; absent → the pinned AMD roots. */
  readonly amdArks: readonly Certificate[];
  readonly nitroAllowedPcrs: readonly Readonly<Record<string, string>>[];
  /** Root(s) the Nitro chain must end at (`nitro.root_pem`); absent → the AWS Nitro root pinned in certs/. */
  readonly nitroRoots: readonly Certificate[];
  /** Keys that may sign workload identity manifests, by kid. */
  readonly workloadIdentityKeys: ReadonlyMap<string, KeyObject>;
  readonly receiptSigningKeys?: { thumbprints?: readonly string[]; kids?: readonly string[] };
  /** SHA-256 of the exact JWS, for rollback equivocation checks and audit records. */
  readonly raw: string;
}

const fail = (msg: string) => new MalformedError('ERR_BUNDLE_MALFORMED', `trust bundle: ${msg}`);

function hexList(v: unknown, field: string, len: number): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && new RegExp(`^[0-9a-f]{${len}}$`).test(x))) {
    throw fail(`${field} must be a list of ${len} lowercase hex digits`);
  }
  return v as string[];
}

function time(v: unknown, field: string): Date {
  if (typeof v !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v)) throw fail(`${field} must be an RFC 3339 UTC time`);
  return new Date(v);
}

/** Payload → TrustBundle (pure; called only after the signature verified). */
function toBundle(p: Readonly<Record<string, unknown>>, raw: string): TrustBundle {
  if (p.schema !== BUNDLE_SCHEMA) throw fail(`expected schema ${BUNDLE_SCHEMA}, got ${JSON.stringify(p.schema)}`);
  if (typeof p.version !== 'number' || !Number.isSafeInteger(p.version) || p.version < 1) throw fail('version must be a positive integer');
  const keys = new Map<string, KeyObject>();
  const wik = p.workload_identity_keys ?? [];
  if (!Array.isArray(wik)) throw fail('workload_identity_keys must be a list of JWKs');
  for (const jwk of wik as Record<string, unknown>[]) {
    if (jwk?.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.kid !== 'string' || typeof jwk.x !== 'string') throw fail('workload_identity_keys entries must be Ed25519 JWKs with a kid');
    keys.set(jwk.kid, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' }));
  }
  const nitro = (p.nitro ?? {}) as { allowed_pcrs?: unknown; root_pem?: unknown };
  if (typeof nitro !== 'object' || nitro === null || Array.isArray(nitro)) throw fail('nitro must be an object');
  if (nitro.root_pem !== undefined && typeof nitro.root_pem !== 'string') throw fail('nitro.root_pem must be a PEM string');
  const pcrs = nitro.allowed_pcrs ?? [];
  if (!Array.isArray(pcrs) || !pcrs.every((s) => typeof s === 'object' && s !== null && Object.entries(s).every(([i, h]) => /^\d{1,2}$/.test(i) && typeof h === 'string' && /^[0-9a-f]{64,128}$/.test(h)))) {
    throw fail('nitro.allowed_pcrs must be a list of {index: hex} sets');
  }
  // An empty set would match every document: refused here, and never matched by the policy either.
  const empty = pcrs.findIndex((s) => Object.keys(s as object).length === 0);
  if (empty >= 0) throw fail(`nitro.allowed_pcrs[${empty}] is empty: a PCR set must name at least one PCR (an empty set would allow any enclave)`);
  const snp = snpKnobs(p.snp);
  const rsk = p.receipt_signing_keys as { thumbprints?: unknown; kids?: unknown } | undefined;
  return {
    version: p.version,
    issuedAt: time(p.issued_at, 'issued_at'),
    validUntil: time(p.valid_until, 'valid_until'),
    allowedMeasurements: hexList(p.allowed_hw_measurements ?? [], 'allowed_hw_measurements', 96),
    allowedTags: hexList(p.allowed_workload_identity_tags ?? [], 'allowed_workload_identity_tags', 64),
    ...(p.min_tcb !== undefined ? { minTcb: tcb(p.min_tcb) } : {}),
    snp,
    amdArks: typeof p.amd_ark_pem === 'string' ? parsePemCertificates(p.amd_ark_pem, 'amd_ark_pem') : [],
    nitroAllowedPcrs: pcrs as Record<string, string>[],
    nitroRoots: typeof nitro.root_pem === 'string' ? parsePemCertificates(nitro.root_pem, 'nitro.root_pem') : [],
    workloadIdentityKeys: keys,
    ...(rsk ? { receiptSigningKeys: { ...(Array.isArray(rsk.thumbprints) ? { thumbprints: rsk.thumbprints as string[] } : {}), ...(Array.isArray(rsk.kids) ? { kids: rsk.kids as string[] } : {}) } } : {}),
    raw,
  };
}

const SNP_FLAGS = { allow_migrate_ma: 'allowMigrateMa', allow_smt: 'allowSmt', require_tsme: 'requireTsme', allow_provisional_firmware: 'allowProvisionalFirmware' } as const;

/** The bundle's `snp` object: the same keys as the per-upstream `snp:` config (docs/wire.md §5). */
function snpKnobs(v: unknown): SnpKnobs {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail('snp must be an object');
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(o)) {
    if (k === 'min_launch_tcb') out.minLaunchTcb = tcb(val, 'snp.min_launch_tcb');
    else if (k in SNP_FLAGS && typeof val === 'boolean') out[SNP_FLAGS[k as keyof typeof SNP_FLAGS]] = val;
    else throw fail(k in SNP_FLAGS ? `snp.${k} must be a boolean` : `snp.${k} is not a known SEV-SNP policy key (${[...Object.keys(SNP_FLAGS), 'min_launch_tcb'].join(', ')})`);
  }
  return out as SnpKnobs;
}

function tcb(v: unknown, field = 'min_tcb'): TcbVersion {
  if (typeof v === 'string') return parseTcbSpec(v, 'milan');
  const o = v as Record<string, unknown>;
  for (const k of ['bootloader', 'tee', 'snp', 'microcode']) {
    if (typeof o?.[k] !== 'number' || !Number.isInteger(o[k]) || (o[k] as number) < 0 || (o[k] as number) > 255) throw fail(`${field}.${k} must be an integer 0..255`);
  }
  return { bootloader: o.bootloader as number, tee: o.tee as number, snp: o.snp as number, microcode: o.microcode as number, ...(typeof o.fmc === 'number' ? { fmc: o.fmc } : {}) };
}

/**
 * Verify a trust bundle: EdDSA only (checked before any crypto), signed by the pinned release
 * root, then its payload validated and `valid_until` enforced at the injected time.
 */
export function verifyTrustBundle(jws: string, opts: { rootKey: KeyObject; at: Date }): Verified<TrustBundle> {
  const parsed = parseJws(jws, { code: 'ERR_BUNDLE_MALFORMED', maxBytes: MAX_BUNDLE_BYTES, what: 'trust bundle' });
  if (parsed.header.alg !== 'EdDSA') throw new VerificationError('ERR_BUNDLE_ALG_NOT_ALLOWED', `expected trust bundle alg EdDSA, got ${JSON.stringify(parsed.header.alg)}`);
  if (parsed.header.typ !== BUNDLE_TYP) throw new MalformedError('ERR_BUNDLE_MALFORMED', `expected trust bundle typ ${BUNDLE_TYP}, got ${JSON.stringify(parsed.header.typ)}`);
  if (parsed.header.crit !== undefined) throw new VerificationError('ERR_BUNDLE_ALG_NOT_ALLOWED', 'the trust bundle header has critical extensions');
  if (!cryptoVerify(null, Buffer.from(parsed.signingInput, 'ascii'), opts.rootKey, parsed.signature)) {
    throw new VerificationError('ERR_BUNDLE_SIGNATURE_INVALID', 'the trust bundle signature does not verify with the pinned release-root key');
  }
  const bundle = toBundle(parsed.payload, jws.trim());
  if (opts.at.getTime() > bundle.validUntil.getTime()) {
    throw new VerificationError('ERR_BUNDLE_EXPIRED', `the trust bundle (version ${bundle.version}) expired at ${bundle.validUntil.toISOString()}`);
  }
  return asVerified(bundle);
}
