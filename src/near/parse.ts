import { MalformedError } from '../errors/index.js';
import { describe, fromHex } from '../util/bytes.js';

/**
 * A NEAR AI Cloud / ACI-legacy per-chat signature (`GET /v1/signature/{id}`, aci-pinaivu-receipts.md
 * §1.9–1.10): `{text, signature, signing_address, signing_algo}`; `text` = `<req sha256 hex>:<resp
 * sha256 hex>` (or `model:req:resp`). Accepts the bare object or a wrapper with `signature_response`.
 */
export interface NearSignature {
  text: string;
  signature: Uint8Array;
  /** As served (compare case-insensitively); for ed25519 the hex public key. */
  signingAddress: string;
  signingAlgo: 'ecdsa' | 'ed25519';
  model?: string;
  requestSha256: string;
  responseSha256: string;
}

/** The text is two or three short fields; 4 KiB bounds it (a model id is well under that). */
export const MAX_TEXT_LENGTH = 4096;
const HEX64 = /^[0-9a-f]{64}$/;

function bad(message: string): never {
  throw new MalformedError('ERR_NEAR_MALFORMED', message);
}

export function parseNearSignature(input: unknown): NearSignature {
  let value = input;
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      bad('expected a JSON signature object, got text that does not parse');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(`expected a signature object, got ${describe(value)}`);
  let o = value as Record<string, unknown>;
  if (typeof o.signature_response === 'object' && o.signature_response !== null) o = o.signature_response as Record<string, unknown>;
  const { text, signature, signing_address: address } = o;
  const algo = o.signing_algo ?? 'ecdsa';
  if (typeof text !== 'string' || text.length > MAX_TEXT_LENGTH) bad(`expected text to be a string of at most ${MAX_TEXT_LENGTH} characters, got ${describe(text)}`);
  if (typeof signature !== 'string') bad(`expected signature to be hex, got ${describe(signature)}`);
  if (typeof address !== 'string') bad(`expected signing_address to be a string, got ${describe(address)}`);
  if (algo !== 'ecdsa' && algo !== 'ed25519') bad(`expected signing_algo "ecdsa" or "ed25519", got ${describe(algo)}`);
  const parts = text.split(':');
  // `req:resp`, or `model:req:resp`; model ids may contain colons (`llama3.2:3b`), so the hashes are the last two fields.
  if (parts.length < 2) bad(`expected text "<request sha256>:<response sha256>" or "model:request:response", got ${describe(text)}`);
  const responseSha256 = parts[parts.length - 1] as string;
  const requestSha256 = parts[parts.length - 2] as string;
  if (!HEX64.test(requestSha256) || !HEX64.test(responseSha256)) bad(`expected text to end with two lowercase sha256 hex fields, got ${describe(text)}`);
  const model = parts.length > 2 ? parts.slice(0, -2).join(':') : undefined;
  const sig = fromHex(signature, { field: 'signature', allow0x: true, code: 'ERR_NEAR_MALFORMED' });
  if (algo === 'ecdsa') {
    if (!/^0x[0-9a-fA-F]{40}$/.test(address)) bad(`expected signing_address to be a 0x-prefixed 20-byte address, got ${describe(address)}`);
  } else if (!/^(0x)?[0-9a-fA-F]{64}$/.test(address)) bad(`expected signing_address to be a 32-byte hex Ed25519 key, got ${describe(address)}`);
  return { text, signature: sig, signingAddress: address, signingAlgo: algo, ...(model !== undefined ? { model } : {}), requestSha256, responseSha256 };
}
