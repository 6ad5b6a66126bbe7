/**
 * Bounds and fixed values of AWS Nitro Enclaves attestation documents, from
 * aws-nitro-enclaves-nsm-api docs/attestation_process.md (§ numbers below) and what every real
 * document shows (see ../shared reference nitro.md).
 */

/** Whole COSE_Sign1 input. Real documents are 4.4–4.8 KB; the payload is bounded by `bstr .size (1..16384)`. */
export const MAX_DOCUMENT_BYTES = 32 * 1024;
/** §3.2.2: pcrs map size ∈ [1, 32], index ∈ [0, 32), value length ∈ {32, 48, 64}. */
export const MAX_PCRS = 32;
export const PCR_LENGTHS = [32, 48, 64] as const;
/** CDDL `cert = bytes .size (1..1024)`, for `certificate` and each `cabundle` entry. */
export const MAX_CERT_BYTES = 1024;
/**
 * public_key, user_data and nonce: at most 512 bytes, as AWS documents them (attestation_process.md
 * §3.2.2.2; the NSM API's `Attestation` request refuses larger values, so no genuine document has
 * more). The CDDL's `bytes .size (0..1024)` (followed by nitrite and Anjuna) is looser; like
 * base/nitro-validator we take the tighter bound. Every real document seen is at most 256 bytes.
 */
export const MAX_USER_DATA_BYTES = 512;
/** COSE alg -35 = ES384; its signature is r‖s, 48 bytes each (RFC 8152 §8.1). */
export const COSE_ALG_ES384 = -35;
export const ES384_SIGNATURE_BYTES = 96;
/** COSE_Sign1 tag (RFC 8152 §4.2); optional on Nitro documents (NSM emits them untagged). */
export const COSE_SIGN1_TAG = 18;
/** SHA-256 of the DER of AWS_NitroEnclaves_Root-G1 (not of the ZIP it ships in). */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';
/** Default freshness for a live document: the AWS leaf lives ~3 h; a router's document should be minutes old. */
export const DEFAULT_MAX_AGE_SECONDS = 600;
/** Tolerated clock skew for a document timestamp in the future. */
export const FUTURE_SKEW_SECONDS = 300;
