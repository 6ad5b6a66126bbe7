import { MalformedError, VerificationError } from '../errors/index.js';
import { evaluateNitroPolicy, parseNitroDocument, verifyNitroDocument, type PcrSet } from '../evidence/nitro/index.js';
import { bytesEqual, describe, fromHex, toHex } from '../util/bytes.js';
import type { Certificate } from '../x509/certificate.js';
import type { CoordinatorKeyBinder } from './verify.js';

/** The coordinator's `/get_attestation` answer is a small JSON object around one NSM document. */
export const MAX_ATTESTATION_BYTES = 64 * 1024;

export interface NitroBindingOptions {
  roots: readonly Certificate[];
  /** Allowed PCR sets (PCR0-2 from the reproducible build or the on-chain EnclaveConfig). */
  allowedPcrs?: readonly PcrSet[];
  allowDebug?: boolean;
  /**
   * The coordinator takes no nonce (user_data is empty), so freshness cannot be proven; by default
   * the document's age is not limited. Set to bound it.
   */
  maxAgeSeconds?: number | null;
}

/**
 * Bind `coordinator_pubkey` with the coordinator's `/get_attestation` JSON (§2.1):
 * `raw_cbor_hex` is an NSM COSE_Sign1 document that must chain to the AWS Nitro root, pass the PCR
 * policy, and carry the coordinator key in its signed `public_key` field.
 */
export function nitroCoordinatorBinder(attestation: unknown, opts: NitroBindingOptions): CoordinatorKeyBinder {
  let value = attestation;
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
    if (text.length > MAX_ATTESTATION_BYTES) throw new MalformedError('ERR_PINAIVU_ATTESTATION_MALFORMED', `expected an attestation of at most ${MAX_ATTESTATION_BYTES} bytes, got ${text.length}`);
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      throw new MalformedError('ERR_PINAIVU_ATTESTATION_MALFORMED', 'expected the /get_attestation JSON, got text that does not parse');
    }
  }
  if (typeof value !== 'object' || value === null) throw new MalformedError('ERR_PINAIVU_ATTESTATION_MALFORMED', `expected the /get_attestation JSON object, got ${describe(value)}`);
  const o = value as Record<string, unknown>;
  if (typeof o.raw_cbor_hex !== 'string') throw new MalformedError('ERR_PINAIVU_ATTESTATION_MALFORMED', `expected raw_cbor_hex to be hex, got ${describe(o.raw_cbor_hex)}`);
  const doc = parseNitroDocument(fromHex(o.raw_cbor_hex, { field: 'raw_cbor_hex', code: 'ERR_PINAIVU_ATTESTATION_MALFORMED' }));
  const unsignedKey = typeof o.public_key === 'string' ? o.public_key.toLowerCase().replace(/^0x/, '') : undefined;

  return async (coordinatorPubkey, at) => {
    if (unsignedKey !== undefined && unsignedKey !== toHex(coordinatorPubkey)) {
      throw new VerificationError('ERR_PINAIVU_ATTESTATION_KEY', `expected the attestation public_key ${toHex(coordinatorPubkey)} (coordinator_pubkey), got ${unsignedKey.slice(0, 64)}`);
    }
    const verified = verifyNitroDocument(doc, { at, roots: opts.roots });
    evaluateNitroPolicy(
      verified,
      {
        ...(opts.allowedPcrs ? { allowedPcrs: opts.allowedPcrs } : {}),
        ...(opts.allowDebug !== undefined ? { allowDebug: opts.allowDebug } : {}),
        expectedPublicKey: coordinatorPubkey,
        maxAgeSeconds: opts.maxAgeSeconds ?? null,
      },
      { at },
    );
    // evaluateNitroPolicy compared the signed public_key; re-check here so this binding never depends on a default.
    if (!verified.publicKey || !bytesEqual(verified.publicKey, coordinatorPubkey)) {
      throw new VerificationError('ERR_PINAIVU_ATTESTATION_KEY', 'expected the Nitro document public_key to be the coordinator key');
    }
    const pcr = (i: number) => {
      const p = verified.pcrs.get(i);
      return p ? toHex(p) : null;
    };
    return {
      pcrPinned: (opts.allowedPcrs?.length ?? 0) > 0,
      summary: { module_id: verified.moduleId, timestamp: new Date(verified.timestamp).toISOString(), pcr0: pcr(0), pcr1: pcr(1), pcr2: pcr(2) },
    };
  };
}
