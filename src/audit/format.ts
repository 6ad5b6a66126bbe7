import { createHash } from 'node:crypto';

/**
 * Audit log wire format (docs/wire.md §7). One JSON object per line; the first three keys are
 * always `seq`, `time`, `prev`; `prev` is the SHA-256 (hex) of the previous line's exact bytes
 * (without its newline), across file rotations; the very first record's `prev` is 64 zeros.
 */
export const GENESIS = '0'.repeat(64);
export const FILE_RE = /^audit-(\d{8})-(\d{4})\.jsonl$/;

export const lineHash = (line: string | Uint8Array) => createHash('sha256').update(line).digest('hex');

export function fileName(day: string, n: number): string {
  return `audit-${day}-${String(n).padStart(4, '0')}.jsonl`;
}

export const dayOf = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, '');

/** Serialise one record: the chain fields first, then the caller's fields (which may not override them). */
export function serialise(seq: number, time: Date, prev: string, record: Record<string, unknown>): string {
  const { seq: _s, time: _t, prev: _p, ...rest } = record;
  return JSON.stringify({ seq, time: time.toISOString(), prev, ...rest });
}
