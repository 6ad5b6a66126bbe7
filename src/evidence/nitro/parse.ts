import { MalformedError } from '../../errors/index.js';
import { CborTag, decodeCbor, type CborKey, type CborValue } from '../../util/cbor.js';
import {
  COSE_ALG_ES384,
  COSE_SIGN1_TAG,
  ES384_SIGNATURE_BYTES,
  MAX_CERT_BYTES,
  MAX_DOCUMENT_BYTES,
  MAX_PCRS,
  MAX_USER_DATA_BYTES,
  PCR_LENGTHS,
} from './constants.js';

/** A Nitro attestation document, parsed but NOT verified. */
export interface NitroDocument {
  readonly moduleId: string;
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: number;
  readonly digest: 'SHA384';
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly certificate: Uint8Array;
  /** As in the document: root first. */
  readonly cabundle: readonly Uint8Array[];
  readonly publicKey?: Uint8Array;
  readonly userData?: Uint8Array;
  readonly nonce?: Uint8Array;
  /** The original protected-header and payload byte strings: what the signature covers. */
  readonly protectedBytes: Uint8Array;
  readonly payloadBytes: Uint8Array;
  readonly signature: Uint8Array;
  readonly tagged: boolean;
}

const bad = (code: string, msg: string, field?: string) => new MalformedError(code, msg, field ? { detail: { field } } : undefined);

function bstr(v: CborValue | undefined, field: string, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad('ERR_NITRO_FIELD', `expected ${field} to be a byte string`, field);
  if (v.length < min || v.length > max) throw bad('ERR_NITRO_FIELD', `expected ${field} of ${min}..${max} bytes, got ${v.length}`, field);
  return v;
}

/** public_key, user_data, nonce: `null` means absent (as every real document encodes it). */
function optional(v: CborValue | undefined, field: string, min: number): Uint8Array | undefined {
  if (v === undefined || v === null) return undefined;
  return bstr(v, field, min, MAX_USER_DATA_BYTES);
}

/**
 * COSE_Sign1 → NitroDocument with the AWS syntactic checks (attestation_process.md §3.2.2).
 * Pure: no crypto, no clock. Throws only MalformedError.
 */
export function parseNitroDocument(bytes: Uint8Array): NitroDocument {
  if (bytes.length === 0 || bytes.length > MAX_DOCUMENT_BYTES) {
    throw bad('ERR_NITRO_COSE_MALFORMED', `expected a document of 1..${MAX_DOCUMENT_BYTES} bytes, got ${bytes.length}`);
  }
  let top = decodeCbor(bytes, { topLevelTags: [COSE_SIGN1_TAG], code: 'ERR_NITRO_COSE_MALFORMED' });
  let tagged = false;
  if (top instanceof CborTag) {
    tagged = true;
    top = top.value;
  }
  if (!Array.isArray(top) || top.length !== 4) throw bad('ERR_NITRO_COSE_MALFORMED', 'expected COSE_Sign1: an array of 4 items');
  const [protectedBytes, unprotected, payloadBytes, signature] = top;
  if (!(protectedBytes instanceof Uint8Array) || !(payloadBytes instanceof Uint8Array) || !(signature instanceof Uint8Array) || !(unprotected instanceof Map)) {
    throw bad('ERR_NITRO_COSE_MALFORMED', 'expected COSE_Sign1 [bstr protected, map unprotected, bstr payload, bstr signature]');
  }
  const header = decodeCbor(protectedBytes, { code: 'ERR_NITRO_PROTECTED_HEADER' });
  if (!(header instanceof Map) || header.size !== 1 || header.get(1) !== COSE_ALG_ES384) {
    throw bad('ERR_NITRO_PROTECTED_HEADER', 'expected the protected header to be exactly {1: -35} (alg ES384)');
  }
  if (signature.length !== ES384_SIGNATURE_BYTES) {
    throw bad('ERR_NITRO_COSE_MALFORMED', `expected a ${ES384_SIGNATURE_BYTES}-byte ES384 signature (r‖s), got ${signature.length}`);
  }
  const payload = decodeCbor(payloadBytes, { code: 'ERR_NITRO_PAYLOAD_MALFORMED' });
  if (!(payload instanceof Map)) throw bad('ERR_NITRO_PAYLOAD_MALFORMED', 'expected the payload to be a map');
  for (const k of payload.keys()) {
    if (typeof k !== 'string') throw bad('ERR_NITRO_PAYLOAD_MALFORMED', 'expected text keys in the payload map');
  }
  const get = (k: string) => payload.get(k as CborKey);

  const moduleId = get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0) throw bad('ERR_NITRO_FIELD', 'expected module_id to be a non-empty text string', 'module_id');
  if (get('digest') !== 'SHA384') throw bad('ERR_NITRO_FIELD', 'expected digest to be "SHA384"', 'digest');
  const timestamp = get('timestamp');
  if (typeof timestamp !== 'number' || !Number.isInteger(timestamp) || timestamp <= 0) {
    throw bad('ERR_NITRO_FIELD', 'expected timestamp to be a positive integer (ms)', 'timestamp');
  }
  const pcrMap = get('pcrs');
  if (!(pcrMap instanceof Map) || pcrMap.size < 1 || pcrMap.size > MAX_PCRS) {
    throw bad('ERR_NITRO_FIELD', `expected pcrs to be a map of 1..${MAX_PCRS} entries`, 'pcrs');
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of pcrMap) {
    if (typeof k !== 'number' || k < 0 || k >= MAX_PCRS) throw bad('ERR_NITRO_PCR_INDEX', `expected PCR indexes in [0, ${MAX_PCRS}), got ${String(k)}`, `pcrs[${String(k)}]`);
    if (!(v instanceof Uint8Array) || !(PCR_LENGTHS as readonly number[]).includes(v.length)) {
      throw bad('ERR_NITRO_PCR_LENGTH', `expected pcrs[${k}] of 32, 48 or 64 bytes`, `pcrs[${k}]`);
    }
    pcrs.set(k, v);
  }
  const certificate = bstr(get('certificate'), 'certificate', 1, MAX_CERT_BYTES);
  const cab = get('cabundle');
  if (!Array.isArray(cab) || cab.length === 0) throw bad('ERR_NITRO_FIELD', 'expected cabundle to be a non-empty array', 'cabundle');
  const cabundle = cab.map((c, i) => bstr(c, `cabundle[${i}]`, 1, MAX_CERT_BYTES));
  const publicKey = optional(get('public_key'), 'public_key', 1);
  const userData = optional(get('user_data'), 'user_data', 0);
  const nonce = optional(get('nonce'), 'nonce', 0);
  return Object.freeze({
    moduleId,
    timestamp,
    digest: 'SHA384' as const,
    pcrs,
    certificate,
    cabundle,
    ...(publicKey ? { publicKey } : {}),
    ...(userData ? { userData } : {}),
    ...(nonce ? { nonce } : {}),
    protectedBytes,
    payloadBytes,
    signature,
    tagged,
  });
}
