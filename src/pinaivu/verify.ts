import { ed25519 } from '@noble/curves/ed25519.js';
import { VerificationError } from '../errors/index.js';
import { asVerified, type Verified } from '../types.js';
import { sha256Hex, toHex } from '../util/bytes.js';
import { routingIntentMessage } from './message.js';
import type { RoutingReceipt } from './parse.js';

/** Evidence that the coordinator key lives in an allowed enclave. Throws when it does not. */
export interface CoordinatorBinding {
  /** true when the enclave image was checked against a PCR allowlist. */
  pcrPinned: boolean;
  summary: Record<string, unknown>;
}
export type CoordinatorKeyBinder = (coordinatorPubkey: Uint8Array, at: Date) => Promise<CoordinatorBinding>;

export interface VerifiedRoutingReceipt extends RoutingReceipt {
  /** Hex SHA-256 of the BCS intent message that was verified. */
  signedMessageSha256: string;
  /** Present when a binder was given and accepted the key. */
  binding?: CoordinatorBinding;
}

/**
 * Verify a Pinaivu routing receipt: Ed25519 (RFC 8032, strict, no pre-hash) by `coordinator_pubkey`
 * over the BCS intent message, then — when a binder is given — the key's Nitro attestation.
 */
export async function verifyRoutingReceipt(receipt: RoutingReceipt, opts: { at: Date; bindKey?: CoordinatorKeyBinder }): Promise<Verified<VerifiedRoutingReceipt>> {
  const message = routingIntentMessage(receipt);
  let ok = false;
  try {
    ok = ed25519.verify(receipt.signature, message, receipt.coordinatorPubkey, { zip215: false });
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new VerificationError('ERR_PINAIVU_SIGNATURE', `the Ed25519 signature does not verify under coordinator_pubkey ${toHex(receipt.coordinatorPubkey)} over the BCS intent message`);
  }
  const binding = opts.bindKey ? await opts.bindKey(receipt.coordinatorPubkey, opts.at) : undefined;
  return asVerified({ ...receipt, signedMessageSha256: sha256Hex(message), ...(binding ? { binding } : {}) });
}
