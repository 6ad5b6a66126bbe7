/**
 * What the daemon keeps about an upstream TLS key after its attestation verified.
 * Profile-neutral: the `tresor` profile fills it from the router envelope, other profiles
 * (ACI, Pinaivu) from their own evidence.
 */
export interface AttestedIdentity {
  /** SHA-256 (lowercase hex) of the upstream leaf certificate's SubjectPublicKeyInfo. */
  readonly spkiSha256: string;
  /** Evidence kind, e.g. `snp`, `nitro`, `tdx`. */
  readonly kind: string;
  /** SNP MEASUREMENT, Nitro PCR0 or TDX MRTD (lowercase hex). */
  readonly measurement?: string;
  /** Workload identity tag (or ACI keyset digest). */
  readonly tag?: string;
  readonly bundleVersion?: number;
  readonly bundleValidUntil?: string;
  readonly verifiedAt: string;
  /** After this instant the pin is no longer trusted without a fresh verification. */
  readonly expiresAt: string;
  /** Receipt signing keys the verified trust bundle allows (RFC 7638 thumbprints and/or kids). */
  readonly receiptSigningKeys?: { readonly thumbprints?: readonly string[]; readonly kids?: readonly string[] };
  /** Non-secret summary for the audit log and /status. */
  readonly summary: Readonly<Record<string, unknown>>;
}
