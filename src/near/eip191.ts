import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { VerificationError } from '../errors/index.js';
import { toHex, utf8 } from '../util/bytes.js';

const N = secp256k1.Point.CURVE().n;

/** EIP-191 version 0x45 (`personal_sign`): keccak256("\x19Ethereum Signed Message:\n" + byte length + message). */
export function eip191Digest(message: string): Uint8Array {
  const body = utf8(message);
  return keccak_256(new Uint8Array(Buffer.concat([utf8(`\x19Ethereum Signed Message:\n${body.length}`), body])));
}

/** Ethereum address (lowercase `0x` hex) of an uncompressed secp256k1 public key: last 20 bytes of keccak256(x‖y). */
export function ethereumAddress(uncompressed: Uint8Array): string {
  return `0x${toHex(keccak_256(uncompressed.subarray(1)).subarray(12))}`;
}

/**
 * Recover the signer's address from a 65-byte r‖s‖v signature over `digest`.
 * v is 27/28 (Ethereum) or 0/1; s must be low (EIP-2: signers emit low-S, high-S is a malleated copy).
 */
export function recoverAddress(signature: Uint8Array, digest: Uint8Array): string {
  if (signature.length !== 65) throw new VerificationError('ERR_NEAR_SIGNATURE_LENGTH', `expected a 65-byte r‖s‖v signature, got ${signature.length} bytes`);
  const v = signature[64] as number;
  const recovery = v === 27 || v === 28 ? v - 27 : v === 0 || v === 1 ? v : -1;
  if (recovery < 0) throw new VerificationError('ERR_NEAR_RECOVERY_ID', `expected v to be 27/28 (or 0/1), got ${v}`);
  const r = BigInt(`0x${toHex(signature.subarray(0, 32))}`);
  const s = BigInt(`0x${toHex(signature.subarray(32, 64))}`);
  if (r <= 0n || r >= N || s <= 0n || s >= N) throw new VerificationError('ERR_NEAR_SIGNATURE', 'expected r and s in [1, n-1]');
  if (s > N >> 1n) throw new VerificationError('ERR_NEAR_HIGH_S', 'expected a low-S signature (EIP-2), got high S');
  try {
    return ethereumAddress(new secp256k1.Signature(r, s, recovery).recoverPublicKey(digest).toBytes(false));
  } catch (cause) {
    throw new VerificationError('ERR_NEAR_SIGNATURE', 'the signature does not recover to a public key', { cause });
  }
}
