/** ACI `aci/1` constants (Dstack-TEE/private-ai-gateway spec/aci.md; shared/reference/aci-pinaivu-receipts.md §1). */
export const ACI_API_VERSION = 'aci/1';
export const REPORT_DATA_PURPOSE = 'aci.report_data.v1';
export const DIGEST_PREFIX = 'sha256:';

/** Wire generations (§0.1): C = flat `key_id` + hex signature; AB = `signature: {algo, key_id, value}`. */
export type AciGeneration = 'C' | 'AB';

export const ALGO_ED25519 = 'ed25519';
export const ALGO_SECP256K1 = 'ecdsa-secp256k1';
export type AciSigningAlgo = typeof ALGO_ED25519 | typeof ALGO_SECP256K1;

/** Receipt documents are a few KiB; 256 KiB and 256 events bound a hostile one. */
export const MAX_RECEIPT_BYTES = 256 * 1024;
export const MAX_EVENTS = 256;
/** Keysets list a handful of keys per role. */
export const MAX_KEYS_PER_ROLE = 64;
/**
 * Implausibly far `not_after` (spec §3.1 says to reject one, without a number): keysets rotate with
 * the workload, so more than 3 years ahead is not believed. Local choice, not from the spec.
 */
export const MAX_NOT_AFTER_HORIZON_SECONDS = 3 * 366 * 24 * 3600;

/** Events every finalized receipt carries (§1.6, "required events at finalize"). */
export const DEFAULT_REQUIRED_EVENTS = ['request.received', 'request.forwarded', 'response.returned'] as const;

/** Fields that only the legacy `/v1/attestation/report` carries (§1.9). */
export const LEGACY_REPORT_FIELDS = ['intel_quote', 'signing_address', 'signing_public_key', 'all_attestations', 'nvidia_payload'] as const;
export const LEGACY_REPORT_PATH = '/v1/attestation/report';
