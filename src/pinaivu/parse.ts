import { MalformedError } from '../errors/index.js';
import { describe, fromHex } from '../util/bytes.js';
import { parseJsonObject } from '../util/json.js';

/**
 * Pinaivu documents (aci-pinaivu-receipts.md §2). Parse layer: shapes only, MalformedError only.
 *
 * `RoutingReceipt` is the coordinator's proof (`GET /v1/proofs/{uuid}`), serialised by serde with
 * byte arrays as JSON arrays of numbers. u64 fields arrive as JSON numbers; values above 2^53 − 1
 * cannot be read exactly by JSON.parse and are refused rather than rounded.
 */
export interface Payout {
  suiAddress: string;
  /** 32 bytes, left-zero-padded from the hex address. */
  address: Uint8Array;
  amountNanox: bigint;
}

export interface RoutingReceipt {
  requestId: string;
  /** The 16 raw UUID bytes. */
  requestIdBytes: Uint8Array;
  /** Not signed by the coordinator (v1 limitation): recorded, never trusted. */
  clientId: unknown;
  primaryPeerId: unknown;
  helperPeerIds: unknown;
  bidSetHash: unknown;
  proofIds: unknown;
  aggregatedOutputHash: Uint8Array;
  payouts: Payout[];
  timestampMs: bigint;
  coordinatorPubkey: Uint8Array;
  signature: Uint8Array;
}

/** The documented `/v1/receipts/{request_id}` response (seed 004). */
export interface DocumentedReceipt {
  requestId: string;
  nodeId: string;
  model: string;
  timestamp: Date;
  paymentAmount: number | string;
  coordinatorSignature: string;
}

/** A routing receipt is a few hundred bytes; 64 payouts and 64 KiB bound a hostile one. */
export const MAX_PAYOUTS = 64;
export const MAX_DOCUMENT_BYTES = 64 * 1024;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function bad(code: string, message: string): never {
  throw new MalformedError(code, message);
}

function object(input: unknown, code: string, what: string): Record<string, unknown> {
  return parseJsonObject(input, { code, what, maxBytes: MAX_DOCUMENT_BYTES });
}

function byteArray(v: unknown, field: string, length: number): Uint8Array {
  if (!Array.isArray(v) || v.length !== length) bad('ERR_PINAIVU_MALFORMED', `expected ${field} to be an array of ${length} bytes, got ${describe(v)}`);
  const out = new Uint8Array(length);
  v.forEach((b, i) => {
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) bad('ERR_PINAIVU_MALFORMED', `expected ${field}[${i}] to be a byte, got ${describe(b)}`);
    out[i] = b;
  });
  return out;
}

function u64(v: unknown, field: string): bigint {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) bad('ERR_PINAIVU_MALFORMED', `expected ${field} to be a u64, got ${describe(v)}`);
  if (!Number.isSafeInteger(v)) bad('ERR_PINAIVU_U64_PRECISION', `expected ${field} below 2^53 (a JSON number above that is not exact), got ${v}`);
  return BigInt(v);
}

/** Sui address `0x…` (up to 32 bytes of hex) → 32 bytes, left-zero-padded (§2.1). */
export function suiAddressBytes(text: string, field: string): Uint8Array {
  if (!/^0x[0-9a-fA-F]{1,64}$/.test(text)) bad('ERR_PINAIVU_MALFORMED', `expected ${field} to be a 0x-prefixed Sui address of at most 32 bytes, got ${describe(text)}`);
  const hex = text.slice(2).padStart(64, '0');
  return fromHex(hex, { field, code: 'ERR_PINAIVU_MALFORMED' });
}

export function parseRoutingReceipt(input: unknown): RoutingReceipt {
  const o = object(input, 'ERR_PINAIVU_MALFORMED', 'routing receipt');
  const requestId = o.request_id;
  if (typeof requestId !== 'string' || !UUID_RE.test(requestId)) bad('ERR_PINAIVU_MALFORMED', `expected request_id to be a UUID, got ${describe(requestId)}`);
  const payouts = o.payouts;
  if (!Array.isArray(payouts) || payouts.length > MAX_PAYOUTS) bad('ERR_PINAIVU_MALFORMED', `expected payouts to be an array of at most ${MAX_PAYOUTS}, got ${describe(payouts)}`);
  return {
    requestId: requestId.toLowerCase(),
    requestIdBytes: fromHex(requestId.replace(/-/g, '').toLowerCase(), { length: 16 }),
    clientId: o.client_id,
    primaryPeerId: o.primary_peer_id,
    helperPeerIds: o.helper_peer_ids,
    bidSetHash: o.bid_set_hash,
    proofIds: o.proof_ids,
    aggregatedOutputHash: byteArray(o.aggregated_output_hash, 'aggregated_output_hash', 32),
    payouts: payouts.map((p: unknown, i): Payout => {
      if (typeof p !== 'object' || p === null) bad('ERR_PINAIVU_MALFORMED', `expected payouts[${i}] to be an object`);
      const { sui_address: addr, amount_nanox: amount } = p as Record<string, unknown>;
      if (typeof addr !== 'string') bad('ERR_PINAIVU_MALFORMED', `expected payouts[${i}].sui_address to be a string, got ${describe(addr)}`);
      return { suiAddress: addr, address: suiAddressBytes(addr, `payouts[${i}].sui_address`), amountNanox: u64(amount, `payouts[${i}].amount_nanox`) };
    }),
    timestampMs: u64(o.timestamp_ms, 'timestamp_ms'),
    coordinatorPubkey: byteArray(o.coordinator_pubkey, 'coordinator_pubkey', 32),
    signature: byteArray(o.signature, 'signature', 64),
  };
}

/** The documented receipt: fields well-formed; the signature is kept as text (its scheme is not public). */
export function parseDocumentedReceipt(input: unknown): DocumentedReceipt {
  const o = object(input, 'ERR_PINAIVU_RECEIPT_MALFORMED', 'receipt');
  const s = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string' || v.length === 0 || v.length > 1024) bad('ERR_PINAIVU_RECEIPT_MALFORMED', `expected ${k} to be a non-empty string, got ${describe(v)}`);
    return v;
  };
  const ts = s('timestamp');
  // ISO 8601 with a zone, as documented ("2024-04-25T14:32:07Z").
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(ts) || Number.isNaN(Date.parse(ts))) {
    bad('ERR_PINAIVU_RECEIPT_MALFORMED', `expected timestamp in ISO 8601 with a zone, got ${describe(ts)}`);
  }
  const amount = o.payment_amount;
  const amountOk = (typeof amount === 'number' && Number.isFinite(amount) && amount >= 0) || (typeof amount === 'string' && /^\d+(\.\d+)?( [A-Z]{2,10})?$/.test(amount));
  if (!amountOk) bad('ERR_PINAIVU_RECEIPT_MALFORMED', `expected payment_amount to be a non-negative number (or "0.000042 USDC"), got ${describe(amount)}`);
  const sig = s('coordinator_signature');
  if (!/^0x[0-9a-fA-F]+$/.test(sig)) bad('ERR_PINAIVU_RECEIPT_MALFORMED', `expected coordinator_signature to be 0x-prefixed hex, got ${describe(sig)}`);
  return { requestId: s('request_id'), nodeId: s('node_id'), model: s('model'), timestamp: new Date(ts), paymentAmount: amount as number | string, coordinatorSignature: sig };
}
