import { MalformedError, PolicyError, VerificationError } from '../errors/index.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { canonicalBytes } from '../jcs/index.js';
import { asVerified, type Verified } from '../types.js';
import { bytesEqual, concatBytes, describe, fromHex, sha256, toHex } from '../util/bytes.js';
import {
  ACI_API_VERSION,
  LEGACY_REPORT_FIELDS,
  LEGACY_REPORT_PATH,
  MAX_NOT_AFTER_HORIZON_SECONDS,
  type AciGeneration,
} from './constants.js';
import { keysetDigest, reportDataFor, workloadIdFor, type AciTrustedKeyset } from './keyset.js';
import { isDigestString, isObject, parseAciKeyset, parseJsonObject, str, type AciKeyset, type JsonObject } from './parse.js';
import type { TeeVerifier } from './tee.js';

export interface AciIdentity extends AciTrustedKeyset {
  generation: AciGeneration;
  keyset: AciKeyset;
  teeType: string;
  /** Hex `report_data` (SHA-256 of the statement rebuilt with our nonce). */
  reportData: string;
  notAfter: number;
  /** The SPKI the live connection presented, when it was checked. */
  tlsSpkiSha256?: string;
  tee: Record<string, unknown>;
}

export interface AciAttestationOptions {
  /** OUR nonce: 64 lowercase hex for gen C, any string for gen A/B; `null` for the unchallenged form. */
  nonce: string | null;
  at: Date;
  teeVerifier: TeeVerifier;
  /** SHA-256 (hex) of the DER SPKI of the live TLS end-entity certificate; checked against `tls_public_keys`. */
  liveSpkiSha256?: string;
  /** The hostname connected to; keyset TLS entries carrying a `domain` apply only to it. */
  hostname?: string;
  /** The URL (or path) the report was fetched from: the legacy endpoint is refused. */
  source?: string;
}

const NONCE_RE = /^[0-9a-f]{64}$/;

/**
 * Refuse the legacy `/v1/attestation/report` as a source of receipt keys (§1.9): since 2026-06-20
 * its quote binds `identity ‖ nonce`, not the ACI statement, so the keyset it embeds is not bound.
 */
export function assertNotLegacyReport(report: JsonObject, source?: string): void {
  const path = source === undefined ? undefined : source.replace(/^[a-z]+:\/\/[^/]+/i, '').split('?')[0];
  const legacyField = LEGACY_REPORT_FIELDS.find((f) => report[f] !== undefined);
  if (path === LEGACY_REPORT_PATH || legacyField) {
    throw new PolicyError([
      {
        code: 'ERR_ACI_LEGACY_REPORT',
        message: `expected an ACI report from /v1/aci/attestation, got a legacy /v1/attestation/report (${legacyField ? `field "${legacyField}"` : 'path'}): its quote does not bind the keyset, so it cannot establish receipt keys`,
      },
    ]);
  }
}

/**
 * Establish an ACI identity (§1.8 step 1): every binding from our nonce to the TEE evidence, then
 * expiry and the TLS key. Returns the keyset only when all hold.
 */
export async function verifyAciAttestation(input: unknown, opts: AciAttestationOptions): Promise<Verified<AciIdentity>> {
  const report = parseJsonObject(input, 'ERR_ACI_REPORT_MALFORMED', 'attestation report');
  assertNotLegacyReport(report, opts.source);
  if (report.api_version !== ACI_API_VERSION) throw new MalformedError('ERR_ACI_API_VERSION', `expected api_version "${ACI_API_VERSION}", got ${describe(report.api_version)}`);
  const claimedDigest = report.workload_keyset_digest;
  if (!isDigestString(claimedDigest)) throw new MalformedError('ERR_ACI_REPORT_MALFORMED', `expected workload_keyset_digest "sha256:<hex>", got ${describe(claimedDigest)}`);
  const att = report.attestation;
  if (!isObject(att)) throw new MalformedError('ERR_ACI_REPORT_MALFORMED', 'expected attestation to be an object');
  const teeType = str(att, 'tee_type', 'ERR_ACI_REPORT_MALFORMED', 'attestation');
  const evidence = att.evidence;
  if (!isObject(evidence)) throw new MalformedError('ERR_ACI_REPORT_MALFORMED', 'expected attestation.evidence to be an object');
  const reportData = fromHex(str(att, 'report_data', 'ERR_ACI_REPORT_MALFORMED', 'attestation'), { field: 'attestation.report_data', length: 32, code: 'ERR_ACI_REPORT_MALFORMED' });
  const keyset = parseAciKeyset(att.workload_keyset);

  // 1. The keyset hashes to the digest the report names.
  const digest = keysetDigest(keyset.raw);
  if (digest !== claimedDigest) {
    throw new VerificationError('ERR_ACI_KEYSET_DIGEST', `expected workload_keyset_digest ${digest} (SHA-256 of JCS(workload_keyset)), got ${claimedDigest}`);
  }
  // 2. Gen A/B: workload_id is the hash of the identity key.
  let workloadId: string | undefined;
  if (keyset.generation === 'AB') {
    workloadId = workloadIdFor(keyset.identityKey as JsonObject);
    if (report.workload_id !== workloadId) {
      throw new VerificationError('ERR_ACI_WORKLOAD_ID', `expected workload_id ${workloadId} (SHA-256 of JCS(workload_identity.public_key)), got ${describe(report.workload_id)}`);
    }
    verifyKeysetEndorsement(keyset.identityKey as JsonObject, att.keyset_endorsement, digest);
  }
  // 3. The statement rebuilt with OUR nonce hashes to report_data.
  if (opts.nonce !== null && keyset.generation === 'C' && !NONCE_RE.test(opts.nonce)) {
    throw new VerificationError('ERR_ACI_NONCE', `expected our nonce to be 64 lowercase hex, got ${describe(opts.nonce)}`);
  }
  const expected = reportDataFor(digest, opts.nonce, keyset.generation, workloadId);
  if (!bytesEqual(expected, reportData)) {
    throw new VerificationError('ERR_ACI_REPORT_DATA', `expected report_data ${toHex(expected)} (statement with our nonce), got ${toHex(reportData)}`);
  }
  // 4. The TEE evidence verifies and its report-data slot is report_data ‖ 0^32.
  const slot = concatBytes(reportData, new Uint8Array(32));
  const tee = await opts.teeVerifier({ teeType, evidence, expectedReportData: slot, at: opts.at });
  if (!bytesEqual(tee.reportData, slot)) {
    throw new VerificationError('ERR_ACI_TEE_REPORT_DATA', `expected the TEE report-data slot ${toHex(slot)}, got ${toHex(tee.reportData)}`);
  }
  // 5. Expiry, implausible lifetime and the live TLS key.
  const now = Math.floor(opts.at.getTime() / 1000);
  if (now >= keyset.notAfter) {
    throw new PolicyError([{ code: 'ERR_ACI_KEYSET_EXPIRED', message: `expected now (${now}) before the keyset not_after ${keyset.notAfter}` }]);
  }
  if (keyset.notAfter - now > MAX_NOT_AFTER_HORIZON_SECONDS) {
    throw new PolicyError([{ code: 'ERR_ACI_KEYSET_NOT_AFTER', message: `expected not_after within ${MAX_NOT_AFTER_HORIZON_SECONDS} s of now, got ${keyset.notAfter - now} s ahead (implausible)` }]);
  }
  if (opts.liveSpkiSha256 !== undefined) checkTlsKey(keyset, opts.liveSpkiSha256, opts.hostname);

  return asVerified({
    generation: keyset.generation,
    keysetDigest: digest,
    ...(workloadId ? { workloadId } : {}),
    receiptKeys: keyset.receiptKeys,
    keyset,
    teeType,
    reportData: toHex(reportData),
    notAfter: keyset.notAfter,
    ...(opts.liveSpkiSha256 !== undefined ? { tlsSpkiSha256: opts.liveSpkiSha256.toLowerCase() } : {}),
    tee: tee.summary,
  });
}

export const KEYSET_ENDORSEMENT_PURPOSE = 'aci.keyset.endorsement.v1';

/**
 * Gen A/B: the workload identity key endorses the keyset (§1.2):
 *   value = sign_identity(JCS({"purpose":"aci.keyset.endorsement.v1","workload_keyset_digest":D}))
 * Ed25519 gives 64 bytes over the payload; ecdsa-secp256k1 gives 64-byte r‖s (low-S) over SHA-256(payload).
 */
export function verifyKeysetEndorsement(identityKey: JsonObject, endorsement: unknown, digest: string): void {
  if (!isObject(endorsement)) throw new MalformedError('ERR_ACI_REPORT_MALFORMED', 'expected attestation.keyset_endorsement {algo, value} in the older report form');
  const algo = identityKey.algo;
  if (endorsement.algo !== algo) {
    throw new VerificationError('ERR_ACI_KEYSET_ENDORSEMENT', `expected keyset_endorsement.algo ${JSON.stringify(algo)} (the identity key's), got ${describe(endorsement.algo)}`);
  }
  const payload = canonicalBytes({ purpose: KEYSET_ENDORSEMENT_PURPOSE, workload_keyset_digest: digest });
  const sig = fromHex(str(endorsement, 'value', 'ERR_ACI_REPORT_MALFORMED', 'attestation.keyset_endorsement'), { field: 'keyset_endorsement.value', length: 64, code: 'ERR_ACI_REPORT_MALFORMED' });
  const key = fromHex(str(identityKey, 'public_key', 'ERR_ACI_KEYSET_MALFORMED', 'workload_identity.public_key'), { field: 'workload_identity.public_key', code: 'ERR_ACI_KEYSET_MALFORMED' });
  let ok = false;
  try {
    if (algo === 'ed25519') ok = ed25519.verify(sig, payload, key, { zip215: false });
    else if (algo === 'ecdsa-secp256k1') ok = secp256k1.verify(sig, sha256(payload), key, { prehash: false, lowS: true });
    else throw new VerificationError('ERR_ACI_KEYSET_ENDORSEMENT', `expected an ed25519 or ecdsa-secp256k1 identity key, got ${describe(algo)}`);
  } catch (e) {
    if (e instanceof VerificationError) throw e;
    ok = false;
  }
  if (!ok) throw new VerificationError('ERR_ACI_KEYSET_ENDORSEMENT', 'the keyset endorsement does not verify under the workload identity key');
}

/** The live SPKI must be listed; entries with a `domain` count only for that hostname (§1.2). */
export function checkTlsKey(keyset: AciKeyset, liveSpkiSha256: string, hostname?: string): void {
  const host = hostname?.toLowerCase().replace(/\.$/, '');
  const candidates = keyset.tlsKeys.filter((k) => k.domain === undefined || (host !== undefined && k.domain.toLowerCase().replace(/\.$/, '') === host));
  if (!candidates.some((k) => k.spkiSha256 === liveSpkiSha256.toLowerCase())) {
    throw new PolicyError([
      {
        code: 'ERR_ACI_TLS_KEY',
        message: `expected the live TLS SPKI sha256 ${liveSpkiSha256} among tls_public_keys${host ? ` for ${host}` : ''}, got ${candidates.length} candidate(s) that do not match`,
      },
    ]);
  }
}

/** A keyset the operator supplied (`--keyset`): trusted as configured, not attested. */
export function trustedKeysetFrom(input: unknown): AciTrustedKeyset {
  const keyset = parseAciKeyset(input);
  return {
    generation: keyset.generation,
    keysetDigest: keysetDigest(keyset.raw),
    ...(keyset.identityKey ? { workloadId: workloadIdFor(keyset.identityKey) } : {}),
    receiptKeys: keyset.receiptKeys,
  };
}
