import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { VerificationError } from '../errors/index.js';
import { asVerified, type Verified } from '../types.js';
import { assertP256, derToRaw, parseCompactJws, RECEIPT_ALGORITHMS, type KeyResolver, type ParsedJws, type VerifiedReceiptJws } from './jws.js';
import type { MaybePromise } from './verdict.js';

/**
 * Verify a receipt JWS: the algorithm allowlist is enforced before any crypto (`none`, HMAC,
 * RSA, other curves are refused outright), then the signature is checked with a key from the
 * resolver. Returns the parsed receipt only on success.
 */
export async function verifyReceiptJws(jws: string, opts: { resolveKey: KeyResolver }): Promise<Verified<VerifiedReceiptJws>> {
  return verifyReceiptJwsNow(jws, opts);
}

/**
 * `verifyReceiptJws`, the same checks in the same order, as a value when the resolver has the
 * keys at hand (the daemon's cached JWKS): a promise only when they must be fetched. What
 * `verifyReceiptJws` rejects with, it throws (or, after waiting for the keys, rejects with).
 */
export function verifyReceiptJwsNow(jws: string, opts: { resolveKey: KeyResolver }): MaybePromise<Verified<VerifiedReceiptJws>> {
  const parsed = parseCompactJws(jws);
  const alg = parsed.header.alg;
  if (typeof alg !== 'string' || !(RECEIPT_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new VerificationError('ERR_RECEIPT_ALG_NOT_ALLOWED', `expected alg ES256, got ${JSON.stringify(alg)}`);
  }
  if (parsed.header.crit !== undefined) {
    throw new VerificationError('ERR_RECEIPT_CRIT_UNSUPPORTED', 'the receipt header has critical extensions this verifier does not implement');
  }
  const kid = typeof parsed.header.kid === 'string' ? parsed.header.kid : undefined;
  let signature = parsed.signature;
  let encoding: 'raw' | 'der' = 'raw';
  if (signature.length !== 64) {
    const raw = derToRaw(signature);
    if (!raw) throw new VerificationError('ERR_RECEIPT_SIGNATURE', `expected a 64-byte ES256 signature, got ${signature.length} bytes`);
    signature = raw;
    encoding = 'der';
  }
  const keys = opts.resolveKey(parsed.header);
  return keys instanceof Promise ? keys.then((k) => verifyWith(parsed, k, signature, encoding, kid)) : verifyWith(parsed, keys, signature, encoding, kid);
}

/** The signature against each candidate key: the receipt, verified, with the first that verifies it. */
function verifyWith(parsed: ParsedJws, keys: readonly KeyObject[], signature: Uint8Array, encoding: 'raw' | 'der', kid: string | undefined): Verified<VerifiedReceiptJws> {
  const data = Buffer.from(parsed.signingInput, 'ascii');
  for (const key of keys) {
    assertP256(key);
    if (cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature)) {
      // Every member spelled out (checked by the compiler): `{ ...parsed, kid, signatureEncoding }` cost ~1.5 µs (members added to a spread copy).
      const verified = { header: parsed.header, payload: parsed.payload, signingInput: parsed.signingInput, signature: parsed.signature, payloadText: parsed.payloadText, member: parsed.member, verbatim: parsed.verbatim, kid, signatureEncoding: encoding } satisfies Record<keyof VerifiedReceiptJws, unknown>;
      return asVerified(verified);
    }
  }
  throw new VerificationError('ERR_RECEIPT_SIGNATURE', `the receipt signature does not verify with ${kid ? `key ${JSON.stringify(kid)}` : 'any EC P-256 key in the JWKS'}`);
}
