import { createHash, timingSafeEqual } from 'node:crypto';
import { MalformedError } from '../errors/index.js';

const HEX_RE = /^[0-9a-fA-F]*$/;

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/**
 * Strict hex decode: even length, hex digits only (an optional `0x` prefix is accepted when
 * `allow0x` is set). Throws MalformedError with `code` otherwise.
 */
export function fromHex(
  text: string,
  opts: { field?: string; length?: number; allow0x?: boolean; code?: string } = {},
): Uint8Array {
  const field = opts.field ?? 'value';
  const code = opts.code ?? 'ERR_HEX_MALFORMED';
  let t = text;
  if (opts.allow0x && (t.startsWith('0x') || t.startsWith('0X'))) t = t.slice(2);
  if (t.length % 2 !== 0 || !HEX_RE.test(t)) {
    throw new MalformedError(code, `expected ${field} to be hex, got ${describe(text)}`);
  }
  const out = new Uint8Array(Buffer.from(t, 'hex'));
  if (opts.length !== undefined && out.length !== opts.length) {
    throw new MalformedError(code, `expected ${field} to be ${opts.length} bytes, got ${out.length}`);
  }
  return out;
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict standard base64 decode (padding optional, no whitespace). */
export function fromBase64(text: string, opts: { field?: string; code?: string } = {}): Uint8Array {
  const t = text.replace(/=+$/, '');
  if (!B64_RE.test(text) || t.length % 4 === 1) {
    throw new MalformedError(opts.code ?? 'ERR_BASE64_MALFORMED', `expected ${opts.field ?? 'value'} to be base64`);
  }
  return new Uint8Array(Buffer.from(t, 'base64'));
}

/**
 * Strict base64url decode (no padding): the alphabet `A-Za-z0-9_-` only, and no length that leaves
 * a single character over. Checked around Node's decoder, not with a regex over the text (a ~7 KB
 * receipt payload: 6.7 us for the regex, about 2 for these native checks): the decoder also reads
 * `+` and `/`, stops at `=`, skips any other character, and reads one above U+00FF by its low byte.
 * So: ASCII only (its UTF-8 length is its length), neither `+` nor `/`, and every character
 * decoded: a skipped one, or an `=`, makes the output shorter than 3/4 of the length rounded down,
 * for any length allowed. test/util/bytes.test.ts fuzzes it against the regex.
 */
export function fromBase64Url(text: string, opts: { field?: string; code?: string } = {}): Uint8Array {
  const bytes = Buffer.from(text, 'base64url');
  if (text.length % 4 === 1 || bytes.length !== (text.length * 3) >>> 2 || Buffer.byteLength(text, 'utf8') !== text.length || text.includes('+') || text.includes('/')) {
    throw new MalformedError(opts.code ?? 'ERR_BASE64_MALFORMED', `expected ${opts.field ?? 'value'} to be base64url`);
  }
  return ownBytes(bytes);
}

/**
 * A decoded Buffer as a plain Uint8Array: a view when it has its ArrayBuffer to itself (a large
 * decode: a copy of a ~6 KB receipt payload saved), a copy when it is a slice of Node's shared
 * 8 KB pool (a view would keep the whole pool alive for as long as the bytes are held).
 */
function ownBytes(b: Buffer): Uint8Array {
  return b.byteOffset === 0 && b.buffer.byteLength === b.byteLength ? new Uint8Array(b.buffer, 0, b.byteLength) : new Uint8Array(b);
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function sha384(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha384');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function sha256Hex(...parts: Uint8Array[]): string {
  return toHex(sha256(...parts));
}

/** Constant-time equality for equal-length inputs; false (not throw) on length mismatch. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Constant-time comparison of two lowercase-or-uppercase hex strings. */
export function hexEqual(a: string, b: string): boolean {
  return a.length === b.length && bytesEqual(Buffer.from(a.toLowerCase()), Buffer.from(b.toLowerCase()));
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

export function utf8(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

/** Short, safe description of an untrusted value for error messages (never the whole value). */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    const s = value.length > 24 ? `${value.slice(0, 24)}…` : value;
    return `string(${value.length}) ${JSON.stringify(s)}`;
  }
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array(${value.length})`;
  return typeof value;
}
