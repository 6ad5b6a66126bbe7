import { X509Certificate } from 'node:crypto';
import { MalformedError } from '../errors/index.js';
import { verifyCoordinatorAttestation } from '../pinaivu/index.js';
import { toHex } from '../util/bytes.js';
import { spkiSha256 } from '../x509/certificate.js';
import { pinnedNitroRoots } from './attest.js';
import type { ArchivedPin, PinReverifier, PinVerification, ReverifyOptions } from './pin-verify.js';

/**
 * The policy a `pinaivu` pin was verified under, as data (archived in its pin document and
 * re-applied here): the `verifyCoordinatorAttestation` options besides time, roots and nonce, and
 * `max_age_seconds` (the pin's lifetime: `expires_at`).
 */
export interface PinaivuPinPolicy {
  allowed_pcr0: string[];
  allow_debug: boolean;
  require_nonce: boolean;
  max_document_age_seconds: number;
  max_age_seconds: number;
}

/** What `tresor-verify audit` cannot repeat for a `pinaivu` pin: the evidence binds no TLS key. */
export const PINAIVU_NOT_RECHECKED = [
  "the TLS key: the coordinator's document binds none (channel unbound), so the pin proves that this upstream served an allowed coordinator's attestation, not that its TLS key is the enclave's",
  'coordinator keys pinned by a re-fetch of /get_attestation after a coordinator restart (they make no pin record: docs/wire.md §7.2)',
];

/** The archived policy, each member checked for its type: a pin document is data from disk. */
function pinaivuPolicy(p: Record<string, unknown>): PinaivuPinPolicy {
  const ok =
    Array.isArray(p.allowed_pcr0) &&
    p.allowed_pcr0.every((x) => typeof x === 'string') &&
    typeof p.allow_debug === 'boolean' &&
    typeof p.require_nonce === 'boolean' &&
    typeof p.max_document_age_seconds === 'number' &&
    typeof p.max_age_seconds === 'number';
  if (!ok) throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', 'the pinaivu pin document lacks its policy (allowed_pcr0, allow_debug, require_nonce, max_document_age_seconds, max_age_seconds)');
  return p as unknown as PinaivuPinPolicy;
}

/**
 * A `pinaivu` pin verified again, as of its own `verified_at`: the `/get_attestation` answer as
 * received, with the nonce we sent and the archived policy, against the pinned AWS Nitro root
 * and (only when given) test roots. No release root is involved. Throws the verifier's typed error.
 */
function reverifyPinaivuPin(pin: ArchivedPin, o: ReverifyOptions): PinVerification {
  const { doc, parts } = pin;
  const body = parts.attestation;
  const leafDer = doc.tls_chain_der_b64?.[0];
  if (!body || !leafDer) throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', 'the pin document lacks its /get_attestation answer or TLS certificate');
  const at = new Date(doc.verified_at);
  if (!Number.isFinite(at.getTime())) throw new MalformedError('ERR_AUDIT_EVIDENCE_INVALID', 'the pin document has no valid verified_at');
  const policy = pinaivuPolicy(doc.policy);
  const id = verifyCoordinatorAttestation(body, {
    at,
    roots: [...pinnedNitroRoots(), ...(o.testRoots ?? [])],
    allowedPcr0: policy.allowed_pcr0,
    allowDebug: policy.allow_debug,
    ...(doc.nonce ? { nonce: doc.nonce } : {}),
    requireNonce: policy.require_nonce,
    maxAgeSeconds: policy.max_document_age_seconds,
  });
  const tlsSpki = spkiSha256(new X509Certificate(Buffer.from(leafDer, 'base64')));
  const coordinator = toHex(id.coordinatorPubkey);
  const freshness = id.freshness === 'nonce' ? 'nonce-bound' : 'not freshness-bound';
  const documentTime = new Date(id.timestamp).toISOString();
  return {
    summary: {
      upstream: doc.upstream,
      profile: doc.profile,
      verified_at: doc.verified_at,
      expires_at: new Date(at.getTime() + policy.max_age_seconds * 1000).toISOString(),
      kind: 'nitro',
      measurement: id.pcr0,
      tag: coordinator,
      tls_spki_sha256: tlsSpki,
      freshness,
      channel: 'unbound',
      test_roots: doc.test_roots,
    },
    described: {
      lines: [
        ['TLS SPKI SHA-256', `${tlsSpki} (not bound by the evidence)`],
        ['Nitro PCR0', id.pcr0],
        ['Coordinator key', coordinator],
        ['Document', `${id.documentSha256} (module ${id.moduleId}, signed ${documentTime})`],
        ['Freshness', freshness],
        ['Channel', 'unbound'],
        ...(o.testRootsLabel ? [['Trust roots', `pinned vendor roots and test roots from ${o.testRootsLabel}`] as [string, string]] : []),
      ],
      fields: {
        tls_spki_sha256: tlsSpki,
        kind: 'nitro',
        measurement: id.pcr0,
        pcrs: { 0: id.pcr0, 1: id.pcr1, 2: id.pcr2 },
        coordinator_pubkey: coordinator,
        module_id: id.moduleId,
        document_sha256: id.documentSha256,
        document_timestamp: documentTime,
        ...(doc.nonce ? { nonce: doc.nonce } : {}),
        freshness,
        channel: 'unbound',
        test_roots: o.testRootsLabel !== undefined,
      },
    },
    notRechecked: [...PINAIVU_NOT_RECHECKED],
  };
}

export const pinaivuPinReverifier: PinReverifier = { needsReleaseRoot: false, reverify: reverifyPinaivuPin };
