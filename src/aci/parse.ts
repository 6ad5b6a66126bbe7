import { MalformedError } from '../errors/index.js';
import { describe, fromHex } from '../util/bytes.js';
import { parseJsonObject as parseJson } from '../util/json.js';
import {
  ACI_API_VERSION,
  ALGO_ED25519,
  ALGO_SECP256K1,
  DIGEST_PREFIX,
  MAX_EVENTS,
  MAX_KEYS_PER_ROLE,
  MAX_RECEIPT_BYTES,
  type AciGeneration,
  type AciSigningAlgo,
} from './constants.js';

/**
 * Parse layer for ACI documents: shapes and encodings only, throws only MalformedError. The parsed
 * JSON object is kept as is, because hashes and signatures are over JCS of the *parsed* document.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export interface AciKey {
  keyId: string;
  algo: AciSigningAlgo;
  publicKey: Uint8Array;
}

export interface AciTlsKey {
  spkiSha256: string;
  domain?: string;
}

export interface AciKeyset {
  generation: AciGeneration;
  /** The keyset object exactly as served (its JCS is what the digest covers). */
  raw: JsonObject;
  /** Receipt signing keys with a known algorithm (entries with unknown `algo` are ignored, §1.2). */
  receiptKeys: AciKey[];
  tlsKeys: AciTlsKey[];
  notAfter: number;
  /** Gen A/B: `workload_identity.public_key` ({algo, public_key}), whose JCS hash is `workload_id`. */
  identityKey?: JsonObject;
  /** Gen A/B: `keyset_epoch.version`. */
  epoch?: number;
}

export interface AciEvent {
  type: string;
  seq?: number;
  raw: JsonObject;
}

export interface AciReceipt {
  generation: AciGeneration;
  document: JsonObject;
  receiptId: string;
  chatId: string | null;
  model: string | null;
  keysetDigest: string;
  workloadId?: string;
  servedAt: number;
  keyId: string;
  /** Gen A/B `signature.algo`; gen C is Ed25519 only. */
  algo?: string;
  signature: Uint8Array;
  events: AciEvent[];
}

function bad(code: string, message: string): never {
  throw new MalformedError(code, message);
}

/** ACI keys and signatures are bare lowercase hex (§1.1): no `0x`, no upper case, so one value has one encoding. */
function lowerHex(text: string, field: string, code: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) bad(code, `expected ${field} to be bare lowercase hex, got ${describe(text)}`);
  return fromHex(text, { field, code });
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function str(o: JsonObject, k: string, code: string, where: string): string {
  const v = o[k];
  if (typeof v !== 'string') bad(code, `expected ${where}.${k} to be a string, got ${describe(v)}`);
  return v;
}

function int(o: JsonObject, k: string, code: string, where: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad(code, `expected ${where}.${k} to be an integer, got ${describe(v)}`);
  return v;
}

const HEX64 = /^[0-9a-f]{64}$/;
export function isDigestString(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(DIGEST_PREFIX) && HEX64.test(v.slice(DIGEST_PREFIX.length));
}

/** Parse JSON text (or accept an already-parsed value) as an object, bounded. */
export function parseJsonObject(input: string | Uint8Array | unknown, code: string, what: string): JsonObject {
  return parseJson(input, { code, what, maxBytes: MAX_RECEIPT_BYTES }) as JsonObject;
}

function keyList(o: JsonObject, k: string): JsonObject[] {
  const v = o[k] ?? [];
  if (!Array.isArray(v) || v.length > MAX_KEYS_PER_ROLE) bad('ERR_ACI_KEYSET_MALFORMED', `expected workload_keyset.${k} to be an array of at most ${MAX_KEYS_PER_ROLE} keys`);
  return v.map((e, i) => {
    if (!isObject(e)) bad('ERR_ACI_KEYSET_MALFORMED', `expected workload_keyset.${k}[${i}] to be an object`);
    return e;
  });
}

/** Public key bytes for a receipt key: Ed25519 32 bytes; secp256k1 65-byte uncompressed (`04…`) or 33-byte compressed. */
function receiptKey(e: JsonObject, i: number): AciKey | undefined {
  const where = `workload_keyset.receipt_signing_keys[${i}]`;
  const algo = e.algo;
  if (algo !== ALGO_ED25519 && algo !== ALGO_SECP256K1) return undefined; // unknown algo: ignored (§1.2)
  const keyId = str(e, 'key_id', 'ERR_ACI_KEYSET_MALFORMED', where);
  const hex = str(e, 'public_key', 'ERR_ACI_KEYSET_MALFORMED', where);
  const publicKey = lowerHex(hex, `${where}.public_key`, 'ERR_ACI_KEYSET_MALFORMED');
  const ok = algo === ALGO_ED25519 ? publicKey.length === 32 : (publicKey.length === 65 && publicKey[0] === 4) || (publicKey.length === 33 && (publicKey[0] === 2 || publicKey[0] === 3));
  if (!ok) bad('ERR_ACI_KEYSET_MALFORMED', `expected ${where}.public_key to be a ${algo} public key, got ${publicKey.length} bytes`);
  return { keyId, algo, publicKey };
}

/** Parse a workload keyset of either generation (§1.2). */
export function parseAciKeyset(input: unknown): AciKeyset {
  const raw = parseJsonObject(input, 'ERR_ACI_KEYSET_MALFORMED', 'workload_keyset');
  const generation: AciGeneration = raw.workload_identity !== undefined ? 'AB' : 'C';
  let notAfter: number;
  let identityKey: JsonObject | undefined;
  let epoch: number | undefined;
  if (generation === 'AB') {
    const wi = raw.workload_identity;
    if (!isObject(wi) || !isObject(wi.public_key)) bad('ERR_ACI_KEYSET_MALFORMED', 'expected workload_keyset.workload_identity.public_key to be an object');
    identityKey = wi.public_key;
    const ep = raw.keyset_epoch;
    if (!isObject(ep)) bad('ERR_ACI_KEYSET_MALFORMED', 'expected workload_keyset.keyset_epoch to be an object');
    notAfter = int(ep, 'not_after', 'ERR_ACI_KEYSET_MALFORMED', 'workload_keyset.keyset_epoch');
    epoch = int(ep, 'version', 'ERR_ACI_KEYSET_MALFORMED', 'workload_keyset.keyset_epoch');
  } else {
    notAfter = int(raw, 'not_after', 'ERR_ACI_KEYSET_MALFORMED', 'workload_keyset');
  }
  const receiptKeys = keyList(raw, 'receipt_signing_keys')
    .map(receiptKey)
    .filter((k): k is AciKey => k !== undefined);
  keyList(raw, 'e2ee_public_keys');
  const tlsKeys = keyList(raw, 'tls_public_keys').map((e, i): AciTlsKey => {
    const where = `workload_keyset.tls_public_keys[${i}]`;
    const spki = str(e, 'spki_sha256', 'ERR_ACI_KEYSET_MALFORMED', where);
    if (!HEX64.test(spki)) bad('ERR_ACI_KEYSET_MALFORMED', `expected ${where}.spki_sha256 to be 64 lowercase hex, got ${describe(spki)}`);
    const domain = e.domain;
    if (domain !== undefined && domain !== null && typeof domain !== 'string') bad('ERR_ACI_KEYSET_MALFORMED', `expected ${where}.domain to be a string`);
    return typeof domain === 'string' ? { spkiSha256: spki, domain } : { spkiSha256: spki };
  });
  return { generation, raw, receiptKeys, tlsKeys, notAfter, ...(identityKey ? { identityKey } : {}), ...(epoch !== undefined ? { epoch } : {}) };
}

function parseEvents(doc: JsonObject, generation: AciGeneration): AciEvent[] {
  const log = doc.event_log;
  if (!Array.isArray(log)) bad('ERR_ACI_RECEIPT_MALFORMED', `expected event_log to be an array, got ${describe(log)}`);
  if (log.length > MAX_EVENTS) bad('ERR_ACI_RECEIPT_MALFORMED', `expected at most ${MAX_EVENTS} events, got ${log.length}`);
  return log.map((e, i): AciEvent => {
    if (!isObject(e)) bad('ERR_ACI_RECEIPT_MALFORMED', `expected event_log[${i}] to be an object`);
    const type = str(e, 'type', 'ERR_ACI_RECEIPT_MALFORMED', `event_log[${i}]`);
    const seq = e.seq;
    if (seq !== undefined && (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)) {
      bad('ERR_ACI_RECEIPT_MALFORMED', `expected event_log[${i}].seq to be a non-negative integer, got ${describe(seq)}`);
    }
    for (const h of ['body_hash', 'cleartext_hash', 'wire_hash'] as const) {
      if (e[h] !== undefined && !isDigestString(e[h])) bad('ERR_ACI_RECEIPT_MALFORMED', `expected event_log[${i}].${h} to be "sha256:" + 64 lowercase hex, got ${describe(e[h])}`);
    }
    void generation;
    return seq === undefined ? { type, raw: e } : { type, seq, raw: e };
  });
}

/** Parse a receipt of any generation, chosen by shape: `signature` a string → C, an object → A/B (§0.1). */
export function parseAciReceipt(input: unknown): AciReceipt {
  const doc = parseJsonObject(input, 'ERR_ACI_RECEIPT_MALFORMED', 'receipt');
  const apiVersion = doc.api_version;
  if (apiVersion !== ACI_API_VERSION) throw new MalformedError('ERR_ACI_API_VERSION', `expected api_version "${ACI_API_VERSION}", got ${describe(apiVersion)}`);
  const sig = doc.signature;
  let generation: AciGeneration;
  let keyId: string;
  let algo: string | undefined;
  let signature: Uint8Array;
  if (typeof sig === 'string') {
    generation = 'C';
    keyId = str(doc, 'key_id', 'ERR_ACI_RECEIPT_MALFORMED', 'receipt');
    signature = lowerHex(sig, 'signature', 'ERR_ACI_RECEIPT_MALFORMED');
  } else if (isObject(sig)) {
    generation = 'AB';
    keyId = str(sig, 'key_id', 'ERR_ACI_RECEIPT_MALFORMED', 'signature');
    algo = str(sig, 'algo', 'ERR_ACI_RECEIPT_MALFORMED', 'signature');
    signature = lowerHex(str(sig, 'value', 'ERR_ACI_RECEIPT_MALFORMED', 'signature'), 'signature.value', 'ERR_ACI_RECEIPT_MALFORMED');
  } else {
    bad('ERR_ACI_RECEIPT_MALFORMED', `expected signature to be a hex string (current form) or {algo, key_id, value} (older form), got ${describe(sig)}`);
  }
  const keysetDigest = doc.workload_keyset_digest;
  if (!isDigestString(keysetDigest)) bad('ERR_ACI_RECEIPT_MALFORMED', `expected workload_keyset_digest to be "sha256:" + 64 lowercase hex, got ${describe(keysetDigest)}`);
  const workloadId = doc.workload_id;
  if (generation === 'AB' && !isDigestString(workloadId)) bad('ERR_ACI_RECEIPT_MALFORMED', `expected workload_id in the older receipt form, got ${describe(workloadId)}`);
  const nullableStr = (k: string) => {
    const v = doc[k];
    if (v !== undefined && v !== null && typeof v !== 'string') bad('ERR_ACI_RECEIPT_MALFORMED', `expected ${k} to be a string or null, got ${describe(v)}`);
    return typeof v === 'string' ? v : null;
  };
  return {
    generation,
    document: doc,
    receiptId: str(doc, 'receipt_id', 'ERR_ACI_RECEIPT_MALFORMED', 'receipt'),
    chatId: nullableStr('chat_id'),
    model: nullableStr('model'),
    keysetDigest,
    ...(generation === 'AB' ? { workloadId: workloadId as string } : {}),
    servedAt: int(doc, 'served_at', 'ERR_ACI_RECEIPT_MALFORMED', 'receipt'),
    keyId,
    ...(algo !== undefined ? { algo } : {}),
    signature,
    events: parseEvents(doc, generation),
  };
}
