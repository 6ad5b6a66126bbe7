import { MalformedError } from '../errors/index.js';

/**
 * A minimal, bounds-checked DER reader for the few structures @peculiar/x509 does not expose:
 * the signed part of a CRL and Intel's SGX extension of a PCK certificate. Definite lengths only
 * (DER), at most 4 length octets; every element must lie inside its parent.
 */
export interface Tlv {
  readonly tag: number;
  /** The whole element (tag, length and content). */
  readonly raw: Uint8Array;
  readonly content: Uint8Array;
}

const bad = (code: string, what: string): never => {
  throw new MalformedError(code, what);
};

/** The element at `offset` of `buf`. */
export function readTlv(buf: Uint8Array, offset = 0, code = 'ERR_DER_MALFORMED'): Tlv {
  if (offset + 2 > buf.length) bad(code, `expected a DER element at offset ${offset}, got ${buf.length - offset} bytes`);
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) bad(code, `expected a single-byte DER tag at offset ${offset}, got 0x${tag.toString(16)}`);
  let len = buf[offset + 1] as number;
  let head = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) bad(code, `expected a definite DER length of 1..4 octets at offset ${offset}, got ${n}`);
    if (offset + 2 + n > buf.length) bad(code, `expected ${n} DER length octets at offset ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[offset + 2 + i] as number);
    head += n;
  }
  const end = offset + head + len;
  if (end > buf.length) bad(code, `expected ${len} bytes of DER content at offset ${offset + head}, got ${buf.length - offset - head}`);
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + head, end) };
}

/** The elements inside a constructed element (SEQUENCE, SET, context tags). */
export function children(parent: Tlv, code = 'ERR_DER_MALFORMED'): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < parent.content.length; ) {
    const t = readTlv(parent.content, off, code);
    out.push(t);
    off += t.raw.length;
  }
  return out;
}

/** A DER OBJECT IDENTIFIER's content as dotted text. */
export function oidText(content: Uint8Array): string {
  const parts: number[] = [];
  let v = 0;
  for (const b of content) {
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      parts.push(v);
      v = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}

/** A small non-negative DER INTEGER (SVNs, enumerations); larger values are refused. */
export function smallInt(content: Uint8Array, field: string, code = 'ERR_DER_MALFORMED'): number {
  if (content.length === 0 || content.length > 4 || ((content[0] as number) & 0x80) !== 0) {
    bad(code, `expected ${field} to be a non-negative integer of at most 4 bytes`);
  }
  let v = 0;
  for (const b of content) v = v * 256 + b;
  return v;
}
