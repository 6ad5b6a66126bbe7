export * from './constants.js';
export { parseAciKeyset, parseAciReceipt, type AciKey, type AciKeyset, type AciReceipt, type AciEvent, type AciTlsKey, type Json, type JsonObject } from './parse.js';
export { keysetDigest, workloadIdFor, attestationStatement, reportDataFor, type AciTrustedKeyset } from './keyset.js';
export { tdxTeeVerifier, type TeeVerifier } from './tee.js';
export { verifyAciAttestation, assertNotLegacyReport, checkTlsKey, trustedKeysetFrom, type AciIdentity, type AciAttestationOptions } from './verify-attestation.js';
export { verifyAciReceipt, aciSigningInput, type VerifiedAciReceipt } from './verify-receipt.js';
export { evaluateAciReceipt, type AciReceiptExpectations, type AciReceiptPolicy, type AciReceiptVerdict } from './policy.js';
export { snpTeeVerifier, teeVerifierByType } from './tee-snp.js';
