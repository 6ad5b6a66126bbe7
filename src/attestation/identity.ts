/** Whether the evidence signs the nonce we sent over this connection (else it could be a replay until it expires). */
export type Freshness = 'nonce-bound' | 'not freshness-bound';

/** Whether the evidence binds this connection's TLS key (else a TLS man in the middle with a trusted certificate is not excluded). */
export type ChannelBinding = 'bound' | 'unbound';

import type { PinEvidence } from '../audit/evidence.js';

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
  /** Whether the evidence signed our nonce. */
  readonly freshness: Freshness;
  /** Whether the evidence bound this connection's TLS key. */
  readonly channel: ChannelBinding;
  /** Non-secret summary for the audit log and /status. */
  readonly summary: Readonly<Record<string, unknown>>;
  /** The evidence exactly as received, until the pin is archived (then dropped: the pin keeps only its id). */
  readonly evidence?: PinEvidence;
  /** The archived pin document's SHA-256 (docs/wire.md §7.2), named by every receipt record made under this pin. */
  readonly evidenceId?: string;
}

/**
 * The `X-Tresor-Attestation` value (docs/wire.md §3.1): the state first (`verified`, ...), then,
 * when an identity is pinned, its freshness and channel binding, and `test roots` when the
 * operator allowed test roots: `verified; nonce-bound; channel: bound`.
 */
export function attestationHeaderValue(state: string, id: AttestedIdentity | undefined, testRoots: boolean): string {
  if (!id) return state;
  return `${state}; ${id.freshness}; channel: ${id.channel}${testRoots ? '; test roots' : ''}`;
}

/** The `attestation` block of an audit record (docs/wire.md §7): the pinned identity and how far it is proven. */
export function auditAttestation(id: AttestedIdentity | undefined, o: { mode: string; testRoots: boolean }): Record<string, unknown> {
  if (!id) return { mode: o.mode, test_roots: o.testRoots };
  return {
    kind: id.kind,
    measurement: id.measurement,
    tag: id.tag,
    tls_spki_sha256: id.spkiSha256,
    bundle_version: id.bundleVersion,
    freshness: id.freshness,
    channel: id.channel,
    test_roots: o.testRoots,
    ...(id.evidenceId ? { evidence: id.evidenceId } : {}),
  };
}
