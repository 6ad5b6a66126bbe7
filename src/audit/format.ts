import { hash } from 'node:crypto';

/**
 * Audit log wire format (docs/wire.md §7). One JSON object per line; the first three keys are
 * always `seq`, `time`, `prev`; `prev` is the SHA-256 (hex) of the previous line's exact bytes
 * (without its newline), across file rotations; the very first record's `prev` is 64 zeros.
 */
export const GENESIS = '0'.repeat(64);
export const FILE_RE = /^audit-(\d{8})-(\d{4})\.jsonl$/;

/** SHA-256 (hex) of a line's UTF-8 bytes; one call instead of a Hash object (~0.5 us less per 2.6 KB record). */
export const lineHash = (line: string | Uint8Array) => hash('sha256', line, 'hex');

export function fileName(day: string, n: number): string {
  return `audit-${day}-${String(n).padStart(4, '0')}.jsonl`;
}

const DAY_MS = 86_400_000;
let today = { from: 0, until: 0, day: '' };

/** `YYYYMMDD` of a time (UTC); the day's bounds are kept, so most calls are two comparisons. */
export function dayOf(d: Date): string {
  const t = d.getTime();
  if (t >= today.from && t < today.until) return today.day;
  const day = d.toISOString().slice(0, 10).replace(/-/g, '');
  const from = Math.floor(t / DAY_MS) * DAY_MS;
  today = { from, until: from + DAY_MS, day };
  return day;
}

/** Serialise one record: the chain fields first, then the caller's fields (which may not override them). */
export function serialise(seq: number, time: Date, prev: string, record: Record<string, unknown>): string {
  const { seq: _s, time: _t, prev: _p, ...rest } = record;
  return JSON.stringify({ seq, time: time.toISOString(), prev, ...rest });
}
