/**
 * tresor-attest as a library: the one public surface (everything else under `src/` is
 * internal). The attested transport for OpenAI-compatible clients, the typed errors, and the
 * verifiers `tresor-verify` runs, with time and trust roots injected.
 *
 * @packageDocumentation
 */

// The attested transport.
export { attestedFetch, verdictFor } from './client/fetch.js';
export type { AttestedFetch, ResponseLike } from './client/fetch.js';
export { AttestedAgent } from './client/agent.js';
export type { AttestedOptions } from './client/options.js';
export type { VerdictSummary } from './receipts/verdicts.js';

// Typed errors (all AttestationError subclasses; `code` as in the rest of the taxonomy).
export {
  AttestationError,
  MeasurementNotAllowedError,
  IdentityTagNotAllowedError,
  TCBBelowFloorError,
  ReportDataMismatchError,
  SPKIMismatchError,
  BundleSignatureInvalid,
  BundleRejectedError,
  CertificateChainError,
  EvidenceStaleError,
  EvidenceMalformedError,
  EvidenceVerificationError,
  AttestationPolicyError,
  AttestationUnavailableError,
  ReceiptRejectedError,
  toAttestationError,
  attestationErrorOf,
} from './errors/attestation.js';
export { TresorError } from './errors/index.js';
export type { Phase, PolicyViolation } from './errors/index.js';

// Verifiers (parse → verify → policy; `at` and roots injected).
export { verifyNitroDocument, verifySnpReport, verifyTdxQuote, verifyReceipt, verifyAuditLog, verifyTrustBundle } from './verifiers.js';
export type { NitroPolicy, VerifiedNitro, PcrSet } from './evidence/nitro/index.js';
export type { SnpPolicy, VerifiedSnp, SnpReport, TcbVersion, Product } from './evidence/snp/index.js';
export type { TdxPolicy, TdxMeasurements, TdxPolicyReport, VerifiedTdxQuote } from './evidence/tdx/index.js';
export type { ReceiptExpectations, ReceiptHooks, ReceiptVerdict, Check, CheckResult } from './receipts/verdict.js';
export type { AuditReport, AuditBreak } from './audit/verify.js';
export type { TrustBundle } from './trust/verify-bundle.js';
export type { Verified } from './types.js';
