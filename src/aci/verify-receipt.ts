import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { VerificationError } from '../errors/index.js';
import { canonicalBytes } from '../jcs/index.js';
import { asVerified, type Verified } from '../types.js';
import { bytesEqual, sha256, toHex, utf8 } from '../util/bytes.js';
import { ALGO_ED25519, ALGO_SECP256K1 } from './constants.js';
import type { AciTrustedKeyset } from './keyset.js';
import type { AciKey, AciReceipt, JsonObject } from './parse.js';

export interface VerifiedAciReceipt extends AciReceipt {
  /** The keyset entry whose key produced the signature. */
  key: AciKey;
  /** Hex SHA-256 of the signing input (JCS), for audit records. */
  signingInputSha256: string;
}

const N = secp256k1.Point.CURVE().n;

/**
 * The signing input (§1.6):
 *   gen C:   JCS(document without "signature")
 *   gen A/B: JCS(document with ONLY signature.value removed; algo and key_id stay in)
 */
export function aciSigningInput(receipt: Pick<AciReceipt, 'generation' | 'document'>): Uint8Array {
  const { signature, ...rest } = receipt.document;
  if (receipt.generation === 'C') return canonicalBytes(rest, { integersOnly: true });
  const { value: _value, ...sigRest } = signature as JsonObject;
  return canonicalBytes({ ...rest, signature: sigRest }, { integersOnly: true });
}

/** Forms a careless signer might have signed instead of the canonical one (used only to name the failure). */
function nonCanonicalForms(receipt: AciReceipt): Uint8Array[] {
  const { signature, ...rest } = receipt.document;
  const forms: Uint8Array[] = [utf8(JSON.stringify(rest)), utf8(JSON.stringify(rest, null, 2)), canonicalBytes(receipt.document)];
  if (receipt.generation === 'AB') {
    const { value: _v, ...sigRest } = signature as JsonObject;
    forms.push(canonicalBytes(rest), utf8(JSON.stringify({ ...rest, signature: sigRest })));
  }
  return forms;
}

function ed25519Verifies(sig: Uint8Array, msg: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    // RFC 8032 strict decoding (the reference uses ed25519-dalek verify_strict): no ZIP-215 leniency.
    return ed25519.verify(sig, msg, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

function fail(code: string, message: string, detail?: Record<string, unknown>): never {
  throw new VerificationError(code, message, detail ? { detail } : {});
}

/** secp256k1 65-byte r‖s‖v → recovered uncompressed public key over `digest`; low-S only. */
function recoverSecp256k1(sig: Uint8Array, digest: Uint8Array): Uint8Array {
  if (sig.length === 64) fail('ERR_ACI_RECEIPT_SIGNATURE_LENGTH', 'expected a 65-byte r‖s‖v secp256k1 signature, got 64 bytes (no recovery id): 64-byte signatures must be rejected');
  if (sig.length !== 65) fail('ERR_ACI_RECEIPT_SIGNATURE_LENGTH', `expected a 65-byte r‖s‖v secp256k1 signature, got ${sig.length} bytes`);
  const v = sig[64] as number;
  const recovery = v <= 3 ? v : v >= 27 && v <= 30 ? v - 27 : -1;
  if (recovery < 0) fail('ERR_ACI_RECEIPT_RECOVERY_ID', `expected recovery id v in 0..3 or 27..30, got ${v}`);
  const r = BigInt(`0x${toHex(sig.subarray(0, 32))}`);
  const s = BigInt(`0x${toHex(sig.subarray(32, 64))}`);
  if (r <= 0n || r >= N || s <= 0n || s >= N) fail('ERR_ACI_RECEIPT_SIGNATURE', 'expected r and s in [1, n-1]');
  if (s > N >> 1n) fail('ERR_ACI_RECEIPT_HIGH_S', 'expected a low-S secp256k1 signature (s <= n/2), got high S: the signer emits low-S, a high-S value is a malleated signature');
  try {
    return new secp256k1.Signature(r, s, recovery).recoverPublicKey(digest).toBytes(false);
  } catch (cause) {
    throw new VerificationError('ERR_ACI_RECEIPT_SIGNATURE', 'the secp256k1 signature does not recover to a public key', { cause });
  }
}

function uncompressed(key: Uint8Array): Uint8Array {
  return key.length === 65 ? key : secp256k1.Point.fromBytes(key).toBytes(false);
}

/**
 * Verify an ACI receipt's binding to the trusted keyset and its signature (§1.6, §1.8 steps 2.3 and
 * 3). Throws VerificationError with one code per cause; returns the receipt only on success.
 */
export function verifyAciReceipt(receipt: AciReceipt, trust: AciTrustedKeyset): Verified<VerifiedAciReceipt> {
  if (receipt.keysetDigest !== trust.keysetDigest) {
    fail('ERR_ACI_RECEIPT_KEYSET_MISMATCH', `expected workload_keyset_digest ${trust.keysetDigest} (the established keyset), got ${receipt.keysetDigest}`);
  }
  if (trust.generation === 'AB' || receipt.generation === 'AB') {
    if (receipt.workloadId !== trust.workloadId) {
      fail('ERR_ACI_RECEIPT_WORKLOAD_ID', `expected workload_id ${trust.workloadId ?? '(none: the keyset is the current form)'}, got ${receipt.workloadId ?? '(none)'}`);
    }
  }
  const key = trust.receiptKeys.find((k) => k.keyId === receipt.keyId);
  if (!key) {
    fail('ERR_ACI_RECEIPT_KEY_UNKNOWN', `expected key_id to name one of receipt_signing_keys [${trust.receiptKeys.map((k) => k.keyId).join(', ')}], got ${JSON.stringify(receipt.keyId)}`);
  }
  if (receipt.generation === 'C' && key.algo !== ALGO_ED25519) {
    fail('ERR_ACI_RECEIPT_ALGO', `expected an ed25519 receipt key (the current form is Ed25519 only), got ${key.algo}`);
  }
  if (receipt.generation === 'AB' && receipt.algo !== key.algo) {
    fail('ERR_ACI_RECEIPT_ALGO', `expected signature.algo ${JSON.stringify(key.algo)} (the keyset entry's), got ${JSON.stringify(receipt.algo)}`);
  }
  const input = aciSigningInput(receipt);
  const others = trust.receiptKeys.filter((k) => k !== key && k.algo === key.algo);

  if (key.algo === ALGO_ED25519) {
    if (receipt.signature.length !== 64) fail('ERR_ACI_RECEIPT_SIGNATURE_LENGTH', `expected a 64-byte Ed25519 signature, got ${receipt.signature.length} bytes`);
    if (!ed25519Verifies(receipt.signature, input, key.publicKey)) {
      const signer = others.find((k) => ed25519Verifies(receipt.signature, input, k.publicKey));
      if (signer) fail('ERR_ACI_RECEIPT_KEY_ID_MISMATCH', `expected a signature by key_id ${JSON.stringify(key.keyId)}, got one by ${JSON.stringify(signer.keyId)}`);
      if (nonCanonicalForms(receipt).some((f) => ed25519Verifies(receipt.signature, f, key.publicKey))) {
        fail('ERR_ACI_RECEIPT_NOT_CANONICAL', 'expected the signature over the JCS (RFC 8785) signing input, got one over a different serialisation');
      }
      fail('ERR_ACI_RECEIPT_SIGNATURE', `the Ed25519 signature does not verify under key_id ${JSON.stringify(key.keyId)} over the JCS signing input`);
    }
  } else if (key.algo === ALGO_SECP256K1) {
    const recovered = recoverSecp256k1(receipt.signature, sha256(input));
    if (!bytesEqual(recovered, uncompressed(key.publicKey))) {
      const signer = others.find((k) => bytesEqual(recovered, uncompressed(k.publicKey)));
      if (signer) fail('ERR_ACI_RECEIPT_KEY_ID_MISMATCH', `expected a signature by key_id ${JSON.stringify(key.keyId)}, got one by ${JSON.stringify(signer.keyId)}`);
      const overOther = nonCanonicalForms(receipt).some((f) => {
        try {
          return bytesEqual(recoverSecp256k1(receipt.signature, sha256(f)), uncompressed(key.publicKey));
        } catch {
          return false;
        }
      });
      if (overOther) fail('ERR_ACI_RECEIPT_NOT_CANONICAL', 'expected the signature over sha256(JCS signing input), got one over a different serialisation');
      fail('ERR_ACI_RECEIPT_SIGNER_NOT_IN_KEYSET', `expected the signature to recover to the key of ${JSON.stringify(key.keyId)}, got a key that is not in the keyset`, { recovered: toHex(recovered) });
    }
  }
  return asVerified({ ...receipt, key, signingInputSha256: toHex(sha256(input)) });
}
