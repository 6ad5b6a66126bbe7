import { hash } from 'node:crypto';
import { frozenJson } from '../util/frozen-json.js';

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
  return spliced(seq, time, prev, rest) ?? JSON.stringify({ seq, time: time.toISOString(), prev, ...rest });
}

/** A name JSON writes as it is, and not an array index (those go first in an object, before `seq`). */
const PLAIN_NAME = /^[A-Za-z_]\w*$/;

/**
 * The same text, when the record's first member that is not a scalar holds a frozen JSON text
 * (util/frozen-json.ts: a verified receipt's shared checks): the rest is serialised without it
 * (`rest` is a copy), and its text goes in before the next member's name, or the closing brace.
 * `,"next":` (a plain name) is found only where that member starts: it cannot be inside a string
 * (a `"` there is escaped, so a `\` precedes it, never a `,`), and every member before it is a
 * scalar. Saves serialising ~1 KB of checks per receipt record. Undefined for any other shape.
 */
function spliced(seq: number, time: Date, prev: string, rest: Record<string, unknown>): string | undefined {
  let name: string | undefined;
  let text: string | undefined;
  let next: string | undefined;
  for (const key in rest) {
    const v = rest[key];
    if (name === undefined) {
      if (v === null || typeof v !== 'object') continue;
      text = frozenJson(v);
      if (text === undefined) return undefined;
      name = key;
    } else if (v !== undefined && typeof v !== 'function' && typeof v !== 'symbol') {
      // A value with its own toJSON may serialise to nothing: its name would not be there.
      if (v !== null && typeof v === 'object' && 'toJSON' in v) return undefined;
      next = key;
      break;
    }
  }
  if (name === undefined || !PLAIN_NAME.test(name) || (next !== undefined && !PLAIN_NAME.test(next)) || 'toJSON' in rest) return undefined;
  const value = rest[name];
  rest[name] = undefined;
  const line = JSON.stringify({ seq, time: time.toISOString(), prev, ...rest });
  const at = next === undefined ? line.length - 1 : line.indexOf(`,"${next}":`);
  if (at >= 0) return `${line.slice(0, at)},"${name}":${text}${line.slice(at)}`;
  rest[name] = value;
  return undefined;
}
