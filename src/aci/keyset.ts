import { canonicalBytes, canonicalize } from '../jcs/index.js';
import { sha256, sha256Hex } from '../util/bytes.js';
import { DIGEST_PREFIX, REPORT_DATA_PURPOSE } from './constants.js';
import type { AciKey, JsonObject } from './parse.js';
import type { AciGeneration } from './constants.js';

/** `"sha256:" + hex(SHA-256(JCS(keyset)))` (§1.2). ACI documents hold no floats, so JCS is integers-only. */
export function keysetDigest(keyset: JsonObject): string {
  return `${DIGEST_PREFIX}${sha256Hex(canonicalBytes(keyset, { integersOnly: true }))}`;
}

/** Gen A/B `workload_id` = `"sha256:" + hex(SHA-256(JCS({algo, public_key})))` of the identity key object only. */
export function workloadIdFor(identityKey: JsonObject): string {
  return `${DIGEST_PREFIX}${sha256Hex(canonicalBytes(identityKey, { integersOnly: true }))}`;
}

/**
 * The attestation statement (§1.3), built by the verifier from its own nonce:
 *   gen C:   JCS({keyset_digest, nonce, purpose})
 *   gen A/B: JCS({purpose, workload_id, workload_keyset_digest, nonce})
 */
export function attestationStatement(digest: string, nonce: string | null, generation: AciGeneration = 'C', workloadId?: string): string {
  return generation === 'C'
    ? canonicalize({ keyset_digest: digest, nonce, purpose: REPORT_DATA_PURPOSE })
    : canonicalize({ purpose: REPORT_DATA_PURPOSE, workload_id: workloadId ?? null, workload_keyset_digest: digest, nonce });
}

/** `report_data` = SHA-256(statement) (32 bytes); the TEE slot is that ‖ 0^32. */
export function reportDataFor(digest: string, nonce: string | null, generation: AciGeneration = 'C', workloadId?: string): Uint8Array {
  return sha256(Buffer.from(attestationStatement(digest, nonce, generation, workloadId), 'utf8'));
}

/** What a receipt is checked against: an attested identity, or a keyset the operator pinned. */
export interface AciTrustedKeyset {
  generation: AciGeneration;
  keysetDigest: string;
  workloadId?: string;
  receiptKeys: readonly AciKey[];
}
