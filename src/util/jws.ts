import { MalformedError } from '../errors/index.js';
import { fromBase64Url } from './bytes.js';

/** A compact JWS split into its parts; nothing verified. */
export interface ParsedJws {
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: Readonly<Record<string, unknown>>;
  /** `base64url(header) . base64url(payload)`: the signing input, exactly as received. */
  readonly signingInput: string;
  readonly signature: Uint8Array;
  /** The payload's JSON text exactly as signed (members can be read from it as received: util/json-member.ts). */
  readonly payloadText: string;
}

function decodeJsonSegment(seg: string, what: string, code: string): { value: Record<string, unknown>; text: string } {
  const bytes = fromBase64Url(seg, { field: `JWS ${what}`, code });
  // A view, not a copy: the segment is decoded once.
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MalformedError(code, `JWS ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalformedError(code, `expected the JWS ${what} to be a JSON object`);
  }
  return { value: value as Record<string, unknown>, text };
}

/** Parse a compact JWS (three base64url segments, JSON header and payload), bounded. No crypto. */
export function parseJws(text: string, opts: { code: string; maxBytes: number; what: string }): ParsedJws {
  if (text.length > opts.maxBytes) throw new MalformedError(opts.code, `${opts.what} exceeds ${opts.maxBytes} bytes`);
  const jws = text.trim();
  const parts = jws.split('.');
  if (parts.length !== 3) throw new MalformedError(opts.code, `expected ${opts.what} as a compact JWS with 3 segments, got ${parts.length}`);
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJsonSegment(h, 'header', opts.code).value;
  const payload = decodeJsonSegment(p, 'payload', opts.code);
  const signature = fromBase64Url(s, { field: 'JWS signature', code: opts.code });
  // The signing input is the JWS text's own prefix (a slice shares its characters): building it as
  // `${h}.${p}` made a second ~8 KB string, copied once more when it was turned into bytes.
  return { header, payload: payload.value, signingInput: jws.slice(0, h.length + 1 + p.length), signature, payloadText: payload.text };
}
