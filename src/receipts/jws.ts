import { createPublicKey, type KeyObject } from 'node:crypto';
import { MalformedError, VerificationError } from '../errors/index.js';
import { JsonValueMemo } from '../util/json-member.js';
import { parseJws, type LastHeader, type ParsedJws } from '../util/jws.js';

/** Bound on a receipt JWS (the router embeds attestation evidence, so allow some room). */
export const MAX_RECEIPT_JWS_BYTES = 256 * 1024;

/** The only algorithm a Tresor receipt may use (docs §3.2). Checked before any crypto. */
export const RECEIPT_ALGORITHMS = ['ES256'] as const;

export type { ParsedJws } from '../util/jws.js';

export interface VerifiedReceiptJws extends ParsedJws {
  readonly kid: string | undefined;
  /** `raw` is RFC 7518's 64-byte r‖s; `der` is the non-standard form of the docs' sample. */
  readonly signatureEncoding: 'raw' | 'der';
}

/** Resolves the verification key for a protected header (a JWKS cache, or a static set). */
export type KeyResolver = (header: Readonly<Record<string, unknown>>) => KeyObject[] | Promise<KeyObject[]>;

/**
 * The embedded router evidence of recent receipts, by its exact text: receipts carry the same
 * envelope (~5 KB of the payload) until the router refreshes it, so it is parsed once per distinct
 * text, not per receipt (any byte changed: a new text, parsed in full). Last in the payload, as the
 * router writes it, it is found by its bytes before the payload is decoded (util/json-member.ts
 * knownLastMember); anywhere else, by the scanner. Parsing only; what the evidence proves is
 * checked per receipt (attestation/tresor.ts, recognised by these exact bytes).
 */
const ROUTER_BLOCKS = new JsonValueMemo(8);

/** The router's protected header (`alg`, `kid`), the same on every receipt until its key rotates: parsed once per text. */
const LAST_HEADER: LastHeader = {};

/** Parse a receipt's compact JWS (three base64url segments, JSON header and payload). No crypto. */
export function parseCompactJws(text: string): ParsedJws {
  return parseJws(text, { code: 'ERR_RECEIPT_MALFORMED', maxBytes: MAX_RECEIPT_JWS_BYTES, what: 'receipt JWS', reuse: { name: 'router_attestation', memo: ROUTER_BLOCKS }, header: LAST_HEADER });
}

/** Strict DER ECDSA-Sig-Value → 64-byte r‖s, or undefined if `sig` is not exactly that. */
export function derToRaw(sig: Uint8Array, size = 32): Uint8Array | undefined {
  if (sig.length < 8 || sig[0] !== 0x30 || sig[1] !== sig.length - 2) return undefined;
  const out = new Uint8Array(size * 2);
  let pos = 2;
  for (let i = 0; i < 2; i++) {
    if (sig[pos] !== 0x02) return undefined;
    const len = sig[pos + 1] as number;
    let v = sig.subarray(pos + 2, pos + 2 + len);
    if (v.length !== len || len === 0) return undefined;
    // Minimal encoding: a leading zero only before a byte with the high bit set.
    if (v[0] === 0 && (len === 1 || ((v[1] as number) & 0x80) === 0)) return undefined;
    if (((v[0] as number) & 0x80) !== 0) return undefined;
    if (v[0] === 0) v = v.subarray(1);
    if (v.length > size) return undefined;
    out.set(v, i * size + (size - v.length));
    pos += 2 + len;
  }
  return pos === sig.length ? out : undefined;
}

/** Keys a receipt may be verified with: EC P-256 only (a P-384 or an `oct` key is refused). */
export function assertP256(key: KeyObject): void {
  if (key.type !== 'public' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new VerificationError('ERR_JWKS_KEY_TYPE', `expected an EC P-256 public key for ES256, got ${key.asymmetricKeyType ?? key.type} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim());
  }
}

/** A verification key from a JWK (throws MalformedError on junk). */
export function keyFromJwk(jwk: Record<string, unknown>): KeyObject {
  try {
    return createPublicKey({ key: jwk as unknown as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch (cause) {
    throw new MalformedError('ERR_JWKS_MALFORMED', 'a JWKS entry is not a valid public JWK', { cause });
  }
}
