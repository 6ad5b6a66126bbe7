import { PolicyError, TresorError, type ErrorOptions, type Phase, type PolicyViolation } from './index.js';

/**
 * The library's typed errors, with the names the Tresor docs give them (docs.tresor.co,
 * "Verify attestation": `AttestationError` and its subclasses). They are part of the one
 * taxonomy: `AttestationError extends TresorError`, so `code`, `phase`, `detail`, the CLI's
 * exit code and the proxy's HTTP status are the ones the same failure has everywhere else.
 *
 * Verifiers throw the taxonomy's phase classes (`VerificationError`, `PolicyError`, ...);
 * `toAttestationError` is the single mapping from those to the named classes, applied where the
 * library hands an error to the app (the transport and the public verifier functions). The
 * `code` is never changed: a class groups codes, callers that need precision switch on `code`.
 *
 * Base class of every error the library hands to the app: a `TresorError` (same `code`,
 * `phase`, `detail`) whose class names the failure.
 *
 * @example
 * ```ts
 * import { AttestationError } from 'tresor-attest'
 * try {
 *   await fetch('https://api.tresor.co/v1/models') // an attestedFetch
 * } catch (e) {
 *   if (e instanceof AttestationError) console.error(e.name, e.code, e.phase) // e.g. MeasurementNotAllowedError ERR_ATTEST_MEASUREMENT_NOT_ALLOWED verify
 * }
 * ```
 */
export class AttestationError extends TresorError {
  /** Every policy violation found, when the failure came from a policy layer (else empty). */
  readonly violations: readonly PolicyViolation[];

  constructor(phase: Phase, code: string, message: string, options: ErrorOptions & { violations?: readonly PolicyViolation[] } = {}) {
    super(phase, code, message, options);
    this.violations = options.violations ?? [];
  }
}

/**
 * The measurement (SNP MEASUREMENT, Nitro PCRs, TDX MRTD) is not in the allowlist (`ERR_ATTEST_MEASUREMENT_NOT_ALLOWED`, `ERR_POLICY_MEASUREMENT`, ...).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof MeasurementNotAllowedError) console.error(err.code, err.message)
 * }
 * ```
 */
export class MeasurementNotAllowedError extends AttestationError {}
/**
 * The workload identity tag is not in the trust bundle's `allowed_workload_identity_tags` (`ERR_ATTEST_TAG_NOT_ALLOWED`).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof IdentityTagNotAllowedError) console.error(err.code, err.message)
 * }
 * ```
 */
export class IdentityTagNotAllowedError extends AttestationError {}
/**
 * REPORTED_TCB is below the floor, `min_tcb` (`ERR_ATTEST_TCB_BELOW_FLOOR`, `ERR_POLICY_TCB`).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof TCBBelowFloorError) console.error(err.code, err.message)
 * }
 * ```
 */
export class TCBBelowFloorError extends AttestationError {}
/**
 * REPORT_DATA (Nitro user_data, TDX REPORTDATA) does not bind what it must: TLS key, tag, keyset (`ERR_ATTEST_REPORT_DATA_MISMATCH`, ...).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof ReportDataMismatchError) console.error(err.code, err.message)
 * }
 * ```
 */
export class ReportDataMismatchError extends AttestationError {}
/**
 * The live TLS key is not the key the evidence binds (`ERR_ATTEST_SPKI_MISMATCH`, `ERR_ACI_TLS_KEY`, `ERR_NEAR_TLS_UNBOUND`).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof SPKIMismatchError) console.error(err.code, err.message)
 * }
 * ```
 */
export class SPKIMismatchError extends AttestationError {}
/**
 * The trust bundle JWS does not verify with the pinned release-root key (`ERR_BUNDLE_SIGNATURE_INVALID`); no `Error` suffix, as in the Tresor docs.
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof BundleSignatureInvalid) console.error(err.code, err.message)
 * }
 * ```
 */
export class BundleSignatureInvalid extends AttestationError {}
/**
 * The trust bundle is expired, rolled back, equivocating or from a location not allowed (`ERR_BUNDLE_*`).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof BundleRejectedError) console.error(err.code, err.message)
 * }
 * ```
 */
export class BundleRejectedError extends AttestationError {}
/**
 * The evidence's certificate chain does not lead to a trusted root, or is expired or not yet valid (`ERR_CHAIN_*`).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof CertificateChainError) console.error(err.code, err.message)
 * }
 * ```
 */
export class CertificateChainError extends AttestationError {}
/**
 * The evidence is older than allowed, or does not carry the nonce sent (`ERR_ATTEST_STALE`, `ERR_ATTEST_NONCE_MISMATCH`, ...).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof EvidenceStaleError) console.error(err.code, err.message)
 * }
 * ```
 */
export class EvidenceStaleError extends AttestationError {}
/**
 * The evidence could not be parsed (every code of the `malformed` phase without a class of its own).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof EvidenceMalformedError) console.error(err.code, err.message)
 * }
 * ```
 */
export class EvidenceMalformedError extends AttestationError {}
/**
 * Any other signature or binding failure (every code of the `verify` phase without a class of its own).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof EvidenceVerificationError) console.error(err.code, err.message)
 * }
 * ```
 */
export class EvidenceVerificationError extends AttestationError {}
/**
 * Any other policy refusal: debug enclave, VMPL, RTMRs, compose hash (the `policy` phase).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof AttestationPolicyError) console.error(err.code, err.message)
 * }
 * ```
 */
export class AttestationPolicyError extends AttestationError {}
/**
 * Evidence or trust material could not be obtained: network, timeout, size bound, TLS to the router (the `fetch` and `upstream` phases).
 *
 * @example
 * ```ts
 * try { await client.chat.completions.create(req) } catch (e) {
 *   const err = e instanceof OpenAI.APIConnectionError ? e.cause : e
 *   if (err instanceof AttestationUnavailableError) console.error(err.code, err.message)
 * }
 * ```
 */
export class AttestationUnavailableError extends AttestationError {}

/**
 * A completion's receipt did not verify (`ERR_RECEIPT_*`): with `receipts: 'strict'` the response
 * body fails with it instead of ending.
 *
 * @example
 * ```ts
 * try { await res.json() } catch (e) { if (e instanceof ReceiptRejectedError) console.error(e.code) }
 * ```
 */
export class ReceiptRejectedError extends AttestationError {}

type NamedClass = new (phase: Phase, code: string, message: string, options?: ErrorOptions & { violations?: readonly PolicyViolation[] }) => AttestationError;

/** Codes that have a named class; everything else falls back to its phase's class. */
const BY_CODE: Readonly<Record<string, NamedClass>> = {
  ERR_ATTEST_MEASUREMENT_NOT_ALLOWED: MeasurementNotAllowedError,
  ERR_POLICY_MEASUREMENT: MeasurementNotAllowedError,
  ERR_POLICY_TDX_MEASUREMENT: MeasurementNotAllowedError,
  ERR_POLICY_PCR_MISMATCH: MeasurementNotAllowedError,
  ERR_ATTEST_TAG_NOT_ALLOWED: IdentityTagNotAllowedError,
  ERR_ATTEST_TCB_BELOW_FLOOR: TCBBelowFloorError,
  ERR_POLICY_TCB: TCBBelowFloorError,
  ERR_ATTEST_REPORT_DATA_MISMATCH: ReportDataMismatchError,
  ERR_POLICY_REPORT_DATA: ReportDataMismatchError,
  ERR_POLICY_TDX_REPORT_DATA: ReportDataMismatchError,
  ERR_POLICY_USER_DATA: ReportDataMismatchError,
  ERR_NEAR_REPORT_DATA: ReportDataMismatchError,
  ERR_ACI_REPORT_DATA: ReportDataMismatchError,
  ERR_ACI_TEE_REPORT_DATA: ReportDataMismatchError,
  ERR_ATTEST_SPKI_MISMATCH: SPKIMismatchError,
  ERR_ACI_TLS_KEY: SPKIMismatchError,
  ERR_NEAR_TLS_UNBOUND: SPKIMismatchError,
  ERR_BUNDLE_SIGNATURE_INVALID: BundleSignatureInvalid,
  ERR_BUNDLE_EXPIRED: BundleRejectedError,
  ERR_BUNDLE_ROLLBACK: BundleRejectedError,
  ERR_BUNDLE_EQUIVOCATION: BundleRejectedError,
  ERR_BUNDLE_URL_NOT_ALLOWED: BundleRejectedError,
  ERR_BUNDLE_ALG_NOT_ALLOWED: BundleRejectedError,
  ERR_CHAIN_UNTRUSTED: CertificateChainError,
  ERR_CHAIN_EXPIRED: CertificateChainError,
  ERR_CHAIN_NOT_YET_VALID: CertificateChainError,
  ERR_CHAIN_SIGNATURE: CertificateChainError,
  ERR_CHAIN_CONSTRAINTS: CertificateChainError,
  ERR_ATTEST_STALE: EvidenceStaleError,
  ERR_POLICY_STALE: EvidenceStaleError,
  ERR_ATTEST_NONCE_MISMATCH: EvidenceStaleError,
  ERR_POLICY_NONCE: EvidenceStaleError,
  ERR_ACI_NONCE: EvidenceStaleError,
  ERR_NEAR_NONCE: EvidenceStaleError,
};

const BY_PHASE: Readonly<Record<Phase, NamedClass>> = {
  malformed: EvidenceMalformedError,
  verify: EvidenceVerificationError,
  policy: AttestationPolicyError,
  fetch: AttestationUnavailableError,
  upstream: AttestationUnavailableError,
  usage: AttestationError,
  internal: AttestationError,
};

/** The named class an error code maps to (its phase's class when the code has no name of its own). */
export function attestationErrorClass(code: string, phase: Phase): NamedClass {
  return BY_CODE[code] ?? (code.startsWith('ERR_RECEIPT_') ? ReceiptRejectedError : BY_PHASE[phase]);
}

/**
 * The one mapping from the taxonomy to the named classes: same `code`, `phase`, message and
 * detail, the original as `cause`, a policy error's violations kept. An AttestationError is
 * returned as is; anything that is not a TresorError becomes an internal AttestationError.
 *
 * @example
 * ```ts
 * import { toAttestationError } from 'tresor-attest'
 * const err = toAttestationError(e) // e from a lower-level API; err.code === e.code
 * ```
 */
export function toAttestationError(e: unknown): AttestationError {
  if (e instanceof AttestationError) return e;
  if (!(e instanceof TresorError)) {
    const cause = (e as { cause?: unknown } | undefined)?.cause;
    if (cause instanceof TresorError) return toAttestationError(cause);
    return new AttestationError('internal', 'ERR_INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
  }
  const Named = attestationErrorClass(e.code, e.phase);
  return new Named(e.phase, e.code, e.message, {
    cause: e,
    ...(e.detail ? { detail: e.detail } : {}),
    ...(e instanceof PolicyError ? { violations: e.violations } : {}),
  });
}

/**
 * The `AttestationError` in an error or its `cause` chain, or `undefined`. The official `openai`
 * SDK reports every rejected `fetch` as its own `APIConnectionError`, with the typed error as
 * `cause` (unchanged: same class, `code` and `phase`), and LangChain rethrows that; the Vercel AI
 * SDK rethrows the typed error itself, or wraps it in a retryable `APICallError` when a network
 * error code (`ECONNRESET`, ...) is somewhere in its causes. This finds it in every case.
 *
 * @example
 * ```ts
 * import { attestationErrorOf } from 'tresor-attest'
 * try {
 *   await client.chat.completions.create(req) // an OpenAI client with an attestedFetch
 * } catch (e) {
 *   const err = attestationErrorOf(e)
 *   if (err) console.error('refused:', err.name, err.code) // e.g. MeasurementNotAllowedError ERR_ATTEST_MEASUREMENT_NOT_ALLOWED
 *   else throw e
 * }
 * ```
 */
export function attestationErrorOf(e: unknown): AttestationError | undefined {
  const seen = new Set<unknown>();
  for (let at = e; at !== null && typeof at === 'object' && !seen.has(at); at = (at as { cause?: unknown }).cause) {
    if (at instanceof AttestationError) return at;
    seen.add(at);
  }
  return undefined;
}
