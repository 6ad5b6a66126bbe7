import { MalformedError, PolicyError, VerificationError } from '../errors/index.js';
import { evaluateNitroPolicy, parseNitroDocument, verifyNitroDocument } from '../evidence/nitro/index.js';
import { nitroDocumentDigest } from '../evidence/nitro/verify.js';
import { describe, fromHex, toHex } from '../util/bytes.js';
import { parseJsonObject } from '../util/json.js';
import type { Certificate } from '../x509/certificate.js';
import { MAX_ATTESTATION_BYTES } from './nitro-binding.js';

export interface CoordinatorAttestationOptions {
  at: Date;
  /** Nitro roots: the pinned AWS root G1, or an operator's test root. */
  roots: readonly Certificate[];
  /** PCR0s (lowercase hex) of the coordinator images allowed; empty is refused (fail closed). */
  allowedPcr0: readonly string[];
  allowDebug?: boolean;
  /** The nonce we asked with (hex). A document that signs a nonce must sign this one. */
  nonce?: string;
  /** Refuse a document without our nonce (the coordinator takes none today). */
  requireNonce?: boolean;
  /** Bound on the document's age at `at` (the only freshness without a nonce). */
  maxAgeSeconds: number;
}

/** What a verified coordinator attestation establishes. */
export interface CoordinatorIdentity {
  /** The Ed25519 key in the document's signed `public_key`: the key that signs routing proofs. */
  coordinatorPubkey: Uint8Array;
  pcr0: string;
  pcr1: string | null;
  pcr2: string | null;
  moduleId: string;
  /** Document timestamp (ms since the epoch). */
  timestamp: number;
  /** `nonce`: the document signs our nonce; `timestamp`: only its age bounds it. */
  freshness: 'nonce' | 'timestamp';
  documentSha256: string;
}

/**
 * The coordinator's `/get_attestation` answer (aci-pinaivu-receipts.md §2.1):
 * `{pcr0, pcr1, pcr2, public_key, timestamp_ms, raw_cbor_hex}`. Only `raw_cbor_hex` is trusted:
 * an NSM COSE_Sign1 document verified to the Nitro root, then policy (PCR0 allowlist, debug
 * enclaves refused, nonce when signed, age), then its signed `public_key` must be a 32-byte
 * Ed25519 key — the coordinator key. The unsigned JSON fields, when present, must agree.
 */
export function verifyCoordinatorAttestation(input: unknown, opts: CoordinatorAttestationOptions): CoordinatorIdentity {
  const o = parseJsonObject(input, { code: 'ERR_PINAIVU_ATTESTATION_MALFORMED', what: 'the /get_attestation answer', maxBytes: MAX_ATTESTATION_BYTES });
  if (typeof o.raw_cbor_hex !== 'string') throw new MalformedError('ERR_PINAIVU_ATTESTATION_MALFORMED', `expected raw_cbor_hex to be hex, got ${describe(o.raw_cbor_hex)}`);
  const bytes = fromHex(o.raw_cbor_hex.toLowerCase(), { field: 'raw_cbor_hex', code: 'ERR_PINAIVU_ATTESTATION_MALFORMED' });
  const doc = verifyNitroDocument(parseNitroDocument(bytes), { at: opts.at, roots: opts.roots });
  if (opts.allowedPcr0.length === 0) {
    throw new PolicyError([{ code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', message: 'no coordinator PCR0 is allowed (pinaivu.allowed_pcr0 is empty)' }]);
  }
  const ours = opts.nonce === undefined ? undefined : fromHex(opts.nonce, { field: 'nonce' });
  if (opts.requireNonce && doc.nonce === undefined) {
    throw new PolicyError([{ code: 'ERR_POLICY_NONCE', message: 'the coordinator attestation signs no nonce, and attestation.require_nonce is set' }]);
  }
  evaluateNitroPolicy(
    doc,
    {
      allowedPcrs: opts.allowedPcr0.map((h) => ({ 0: h })),
      allowDebug: opts.allowDebug ?? false,
      maxAgeSeconds: opts.maxAgeSeconds,
      // A document that carries a nonce must carry ours (a replayed answer to someone else's).
      ...(doc.nonce !== undefined ? { expectedNonce: ours ?? new Uint8Array(0) } : {}),
    },
    { at: opts.at },
  );
  const key = doc.publicKey;
  if (!key || key.length !== 32) {
    throw new VerificationError('ERR_PINAIVU_ATTESTATION_KEY', `expected the document's public_key to be the 32-byte Ed25519 coordinator key, got ${key ? `${key.length} bytes` : 'none'}`);
  }
  if (typeof o.public_key === 'string' && o.public_key.toLowerCase().replace(/^0x/, '') !== toHex(key)) {
    throw new VerificationError('ERR_PINAIVU_ATTESTATION_KEY', `the unsigned public_key ${o.public_key.slice(0, 64)} differs from the document's signed public_key ${toHex(key)}`);
  }
  const pcr = (i: number) => {
    const p = doc.pcrs.get(i);
    return p ? toHex(p) : null;
  };
  return {
    coordinatorPubkey: key,
    pcr0: pcr(0) ?? '',
    pcr1: pcr(1),
    pcr2: pcr(2),
    moduleId: doc.moduleId,
    timestamp: doc.timestamp,
    freshness: doc.nonce !== undefined ? 'nonce' : 'timestamp',
    documentSha256: nitroDocumentDigest(bytes),
  };
}
