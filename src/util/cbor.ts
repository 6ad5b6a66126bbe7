import { MalformedError } from '../errors/index.js';

/**
 * A strict CBOR (RFC 8949) decoder for attestation documents, written by hand because the
 * subset is small and every rule below must hold: definite lengths only; maps keep their key
 * types (integer PCR indexes, COSE labels) and duplicate keys are rejected; tags only where
 * the caller allows them; no floats, no `undefined`, no simple values beyond false/true/null;
 * no trailing bytes; bounded depth and item counts. It throws only MalformedError.
 * (cbor-x stringifies integer keys in object mode and neither reports duplicates nor trailing data.)
 */
export type CborKey = number | bigint | string;
export type CborValue = number | bigint | string | Uint8Array | boolean | null | CborValue[] | Map<CborKey, CborValue> | CborTag;

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {}
}

export interface CborOptions {
  /** Tags accepted on the top-level item only (e.g. COSE_Sign1's 18). */
  topLevelTags?: readonly number[];
  maxDepth?: number;
  /** Bound on the number of items in any one array or map. */
  maxItems?: number;
  /** Error code prefix for messages, e.g. `ERR_NITRO_CBOR`. */
  code?: string;
}

export function decodeCbor(bytes: Uint8Array, opts: CborOptions = {}): CborValue {
  const code = opts.code ?? 'ERR_CBOR_MALFORMED';
  const maxDepth = opts.maxDepth ?? 16;
  const maxItems = opts.maxItems ?? 4096;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  const fail = (msg: string): never => {
    throw new MalformedError(code, `CBOR: ${msg} at byte ${pos}`);
  };
  const need = (n: number) => {
    if (n > bytes.length - pos) fail(`expected ${n} more bytes, only ${bytes.length - pos} left`);
  };
  const readArg = (info: number): number | bigint => {
    if (info < 24) return info;
    if (info === 24) {
      need(1);
      return bytes[pos++] as number;
    }
    if (info === 25) {
      need(2);
      const v = dv.getUint16(pos);
      pos += 2;
      return v;
    }
    if (info === 26) {
      need(4);
      const v = dv.getUint32(pos);
      pos += 4;
      return v;
    }
    if (info === 27) {
      need(8);
      const v = dv.getBigUint64(pos);
      pos += 8;
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    return fail(info === 31 ? 'indefinite length is not accepted' : `reserved additional information ${info}`);
  };
  const length = (info: number): number => {
    const n = readArg(info);
    if (typeof n === 'bigint' || n > bytes.length) fail('length exceeds the input');
    return n as number;
  };
  const item = (depth: number, top: boolean): CborValue => {
    if (depth > maxDepth) fail(`nesting deeper than ${maxDepth}`);
    need(1);
    const initial = bytes[pos++] as number;
    const major = initial >> 5;
    const info = initial & 0x1f;
    switch (major) {
      case 0:
        return readArg(info);
      case 1: {
        const n = readArg(info);
        return typeof n === 'bigint' ? -1n - n : n === Number.MAX_SAFE_INTEGER ? -1n - BigInt(n) : -1 - n;
      }
      case 2: {
        const n = length(info);
        need(n);
        const v = bytes.subarray(pos, pos + n);
        pos += n;
        return v;
      }
      case 3: {
        const n = length(info);
        need(n);
        let s: string;
        try {
          s = utf8.decode(bytes.subarray(pos, pos + n));
        } catch {
          return fail('text string is not valid UTF-8');
        }
        pos += n;
        return s;
      }
      case 4: {
        const n = length(info);
        if (n > maxItems) fail(`array of ${n} items exceeds ${maxItems}`);
        const out: CborValue[] = [];
        for (let i = 0; i < n; i++) out.push(item(depth + 1, false));
        return out;
      }
      case 5: {
        const n = length(info);
        if (n > maxItems) fail(`map of ${n} entries exceeds ${maxItems}`);
        const out = new Map<CborKey, CborValue>();
        for (let i = 0; i < n; i++) {
          const at = pos;
          const k = item(depth + 1, false);
          if (typeof k !== 'number' && typeof k !== 'bigint' && typeof k !== 'string') {
            pos = at;
            fail('map keys must be integers or text');
          }
          if (out.has(k as CborKey)) {
            pos = at;
            fail(`duplicate map key ${JSON.stringify(String(k))}`);
          }
          out.set(k as CborKey, item(depth + 1, false));
        }
        return out;
      }
      case 6: {
        const tag = readArg(info);
        if (!top || typeof tag === 'bigint' || !(opts.topLevelTags ?? []).includes(tag)) fail(`tag ${String(tag)} is not accepted here`);
        return new CborTag(tag as number, item(depth + 1, false));
      }
      default: {
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        return fail(info >= 25 && info <= 27 ? 'floating-point values are not accepted' : `simple value ${info} is not accepted`);
      }
    }
  };
  const value = item(0, true);
  if (pos !== bytes.length) fail(`${bytes.length - pos} trailing bytes after the top-level item`);
  return value;
}
