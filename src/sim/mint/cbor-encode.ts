import { CborTag, type CborKey, type CborValue } from '../../util/cbor.js';

/**
 * A minimal CBOR (RFC 8949) encoder for the simulator's Nitro documents: exactly the subset the
 * strict decoder in src/util/cbor.ts accepts (integers, byte and text strings, arrays, maps with
 * integer or text keys, false/true/null, a tag), always in preferred serialization (the shortest
 * head for every integer and length, definite lengths only; §4.1). Maps keep their insertion
 * order by default, as the Nitro Secure Module emits its fields; `canonical: true` sorts map keys
 * by the bytes of their encoding (§4.2.1, core deterministic encoding).
 */
export function encodeCbor(value: CborValue, opts: { canonical?: boolean } = {}): Uint8Array {
  const out: number[] = [];
  const canonical = opts.canonical ?? false;

  const head = (major: number, n: number | bigint) => {
    const m = major << 5;
    const v = BigInt(n);
    if (v < 0n) throw new RangeError('CBOR head argument must be non-negative');
    if (v < 24n) out.push(m | Number(v));
    else if (v < 0x100n) out.push(m | 24, Number(v));
    else if (v < 0x10000n) out.push(m | 25, Number(v >> 8n), Number(v & 0xffn));
    else if (v < 0x1_0000_0000n) out.push(m | 26, ...[24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn)));
    else if (v < 1n << 64n) out.push(m | 27, ...[56n, 48n, 40n, 32n, 24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn)));
    else throw new RangeError('CBOR integers are limited to 64 bits');
  };

  const bytes = (b: Uint8Array) => {
    for (const x of b) out.push(x);
  };

  const item = (v: CborValue): void => {
    if (typeof v === 'number' || typeof v === 'bigint') {
      if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError(`CBOR: only integers are encoded, got ${v}`);
      const b = BigInt(v);
      if (b >= 0n) head(0, b);
      else head(1, -1n - b);
    } else if (typeof v === 'string') {
      const b = Buffer.from(v, 'utf8');
      head(3, b.length);
      bytes(b);
    } else if (v instanceof Uint8Array) {
      head(2, v.length);
      bytes(v);
    } else if (v === false) out.push(0xf4);
    else if (v === true) out.push(0xf5);
    else if (v === null) out.push(0xf6);
    else if (Array.isArray(v)) {
      head(4, v.length);
      for (const x of v) item(x);
    } else if (v instanceof Map) {
      head(5, v.size);
      const entries = [...v].map(([k, x]) => [encodeCbor(k as CborKey), x] as const);
      if (canonical) entries.sort(([a], [b]) => Buffer.compare(a, b));
      for (const [k, x] of entries) {
        bytes(k);
        item(x);
      }
    } else if (v instanceof CborTag) {
      head(6, v.tag);
      item(v.value);
    } else {
      throw new TypeError('CBOR: unsupported value');
    }
  };

  item(value);
  return Uint8Array.from(out);
}
