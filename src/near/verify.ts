import { ed25519 } from '@noble/curves/ed25519.js';
import { VerificationError } from '../errors/index.js';
import { asVerified, type Verified } from '../types.js';
import { fromHex, sha256Hex, utf8 } from '../util/bytes.js';
import { eip191Digest, recoverAddress } from './eip191.js';
import type { NearSignature } from './parse.js';

export interface VerifiedNearSignature extends NearSignature {
  /** Lowercase recovered address (ecdsa) or the verified public key hex (ed25519). */
  signer: string;
  /** Which hashes were recomputed from our bytes. */
  checked: { request: boolean; response: boolean; attestedAddress: boolean };
}

export interface NearVerifyOptions {
  /** The exact request bytes sent; its SHA-256 must be the first hash of `text`. */
  requestBody?: Uint8Array;
  /** The exact response bytes received (for streams the raw SSE including the trailing blank line). */
  responseBody?: Uint8Array;
  /** The signing address the attestation report bound (compared case-insensitively). */
  expectedAddress?: string;
}

const norm = (a: string) => a.toLowerCase().replace(/^0x/, '');

/**
 * Verify a per-chat signature: recover (ecdsa, EIP-191 personal_sign) or verify (ed25519) the signer,
 * compare with `signing_address` and the attested address, then recompute both hashes from our bytes.
 */
export function verifyNearSignature(sig: NearSignature, opts: NearVerifyOptions = {}): Verified<VerifiedNearSignature> {
  let signer: string;
  if (sig.signingAlgo === 'ecdsa') {
    signer = recoverAddress(sig.signature, eip191Digest(sig.text));
    if (norm(signer) !== norm(sig.signingAddress)) {
      throw new VerificationError('ERR_NEAR_ADDRESS_MISMATCH', `expected the signature to recover to signing_address ${sig.signingAddress}, got ${signer}`);
    }
  } else {
    const key = fromHex(norm(sig.signingAddress), { field: 'signing_address', length: 32 });
    let ok = false;
    try {
      ok = sig.signature.length === 64 && ed25519.verify(sig.signature, utf8(sig.text), key, { zip215: false });
    } catch {
      ok = false;
    }
    if (!ok) throw new VerificationError('ERR_NEAR_SIGNATURE', 'the Ed25519 signature over text does not verify under signing_address');
    signer = norm(sig.signingAddress);
  }
  if (opts.expectedAddress !== undefined && norm(opts.expectedAddress) !== norm(signer)) {
    throw new VerificationError('ERR_NEAR_ATTESTED_ADDRESS', `expected the attested signing address ${opts.expectedAddress}, got ${signer}`);
  }
  if (opts.requestBody !== undefined) {
    const h = sha256Hex(opts.requestBody);
    if (h !== sig.requestSha256) throw new VerificationError('ERR_NEAR_REQUEST_HASH', `expected the request hash in text to be ${h} (our bytes), got ${sig.requestSha256}`);
  }
  if (opts.responseBody !== undefined) {
    const h = sha256Hex(opts.responseBody);
    if (h !== sig.responseSha256) throw new VerificationError('ERR_NEAR_RESPONSE_HASH', `expected the response hash in text to be ${h} (our bytes), got ${sig.responseSha256}`);
  }
  return asVerified({
    ...sig,
    signer,
    checked: { request: opts.requestBody !== undefined, response: opts.responseBody !== undefined, attestedAddress: opts.expectedAddress !== undefined },
  });
}
