import { fromBase64Url } from '../util/bytes.js';

/**
 * Receipt digests. Ours (docs/wire.md) are `sha256:` + lowercase hex of SHA-256 over the exact
 * bytes; bare hex and base64url of a 32-byte SHA-256 are also accepted. Anything else cannot be
 * compared and is reported `unverifiable`, never a pass.
 */
export type ParsedDigest = { ok: true; bytes: Uint8Array; form: 'prefixed' | 'hex' | 'base64url' } | { ok: false; reason: string };

export function parseDigest(value: unknown): ParsedDigest {
  if (typeof value !== 'string') return { ok: false, reason: `expected a digest string, got ${value === null ? 'null' : typeof value}` };
  let m = /^sha256:([0-9a-f]{64})$/.exec(value);
  if (m) return { ok: true, bytes: new Uint8Array(Buffer.from(m[1] as string, 'hex')), form: 'prefixed' };
  m = /^([0-9a-fA-F]{64})$/.exec(value);
  if (m) return { ok: true, bytes: new Uint8Array(Buffer.from(m[1] as string, 'hex')), form: 'hex' };
  if (/^[A-Za-z0-9_-]{43}$/.test(value)) {
    const bytes = fromBase64Url(value);
    if (bytes.length === 32 && Buffer.from(bytes).toString('base64url') === value) return { ok: true, bytes, form: 'base64url' };
  }
  return { ok: false, reason: `unknown digest form ${value.length > 20 ? `${value.slice(0, 20)}…` : value}` };
}

export const formatDigest = (sha256: Uint8Array) => `sha256:${Buffer.from(sha256).toString('hex')}`;
