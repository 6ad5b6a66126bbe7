import { lineToBytes, type Line } from '../util/appender.js';
import { frozenJson } from '../util/frozen-json.js';
import { OldestFirst } from '../util/oldest-first.js';

/** What `GET /receipts/{id}` answers for an exchange. */
export interface VerdictSummary {
  status: 'pending' | 'done';
  receipt_id?: string;
  request_id: string;
  upstream: string;
  verdict?: string;
  code?: string;
  detail?: string;
  checks?: readonly { name: string; result: string; code?: string; detail?: string }[];
  seq?: number;
}

/**
 * Recent verdicts in memory, by receipt id and by request id, for the app's verdict endpoint;
 * bounded (oldest dropped). Waiters are woken when a verdict lands.
 *
 * Each verdict is kept as its JSON bytes, outside the V8 heap: as objects (a dozen checks with
 * their detail strings, ~40 objects a verdict) a full store of 10,000 verdicts was ~22 MB of live
 * heap that every full garbage collection marked again, which made each one cost twice what it
 * does in a fresh daemon (an upload after a busy hour of completions paid it per MB); as bytes
 * it is ~3 MB of heap (the two keys and a Buffer per verdict), plus ~11 MB of JSON outside the
 * heap that no collection marks (~1.1 KB a verdict at json-c16; heap snapshot, #20's tenth
 * round). `get` parses a fresh copy.
 */
export class VerdictStore {
  private readonly byKey = new Map<string, Buffer>();
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Eviction from the front without re-walking the dead slots of a full Map (util/oldest-first.ts). */
  private readonly oldest = new OldestFirst(this.byKey);

  constructor(private readonly max = 20_000) {}

  /** `json`: the summary's JSON text when the caller has it (as parts: see summaryJson), else it is serialised here. */
  set(v: VerdictSummary, json?: Line): void {
    const bytes = lineToBytes(json ?? JSON.stringify(v));
    for (const key of keysOf(v)) {
      this.byKey.delete(key);
      this.byKey.set(key, bytes);
      const w = this.waiters.get(key);
      if (w) {
        this.waiters.delete(key);
        for (const wake of w) wake();
      }
    }
    this.oldest.trim(this.max);
  }

  get(key: string): VerdictSummary | undefined {
    const bytes = this.byKey.get(key);
    return bytes ? (JSON.parse(bytes.toString()) as VerdictSummary) : undefined;
  }

  /** The summary once it is `done`, or whatever is known when `ms` have passed. */
  async wait(key: string, ms: number, signal?: AbortSignal): Promise<VerdictSummary | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = this.get(key);
      const left = deadline - Date.now();
      if ((v && v.status === 'done') || left <= 0 || signal?.aborted) return v;
      await new Promise<void>((resolve) => {
        const set = this.waiters.get(key) ?? new Set();
        this.waiters.set(key, set);
        const wake = () => {
          clearTimeout(timer);
          set.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        set.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }
}

function keysOf(v: VerdictSummary): string[] {
  return v.receipt_id ? [v.receipt_id, v.request_id] : [v.request_id];
}

/**
 * A done verdict's JSON text as parts, its `checks` not serialised again: the shared list's own
 * text (a verified receipt's checks: util/frozen-json.ts; no search, 2.5 -> 0.9 µs), else taken
 * from the audit line of the same record (`line`, `record` as serialised: its `checks` member is
 * `JSON.stringify(record.checks)`). Parses to what `JSON.stringify(summary)` does
 * (test/receipts/verdicts.test.ts); without such a member, that.
 */
export function summaryJson(summary: VerdictSummary, record: Record<string, unknown>, line: string): Line {
  let checks = summary.checks && frozenJson(summary.checks);
  if (checks === undefined) {
    const span = summary.checks === record.checks ? checksSpan(record, line) : undefined;
    if (!span) return JSON.stringify(summary);
    checks = line.slice(span[0], span[1]);
  }
  const { checks: _c, seq, ...head } = summary;
  const text = JSON.stringify(head);
  return [text.slice(0, -1), ',"checks":', checks, seq === undefined ? '}' : `,"seq":${seq}}`];
}

/**
 * Where the value of `record.checks` is in `line` (the record as the audit log serialises it: the
 * chain fields, then its members in their own order), found with two searches instead of a scan
 * of the text. For a plain name (letters, digits, `_`), `,"name":` is always a member's name: that
 * `"` is not escaped (no `\` before it) and cannot close a string (a name character follows it).
 * So the first `,"checks":` is the record's own when no member before it holds an object, and the
 * value ends at the next member's name when no check holds that name (or at the closing brace).
 * Undefined for any other shape (the caller then serialises the summary itself).
 */
export function checksSpan(record: Record<string, unknown>, line: string): [number, number] | undefined {
  const checks = record.checks;
  // The chain fields (scalars) open the line; ones the record carries itself are left out of it.
  if (!Array.isArray(checks) || !line.startsWith('{"seq":') || 'toJSON' in record || 'seq' in record || 'time' in record || 'prev' in record) return undefined;
  let before = true;
  let next: string | undefined;
  for (const key of Object.keys(record)) {
    const v = record[key];
    if (key === 'checks') before = false;
    else if (before && !isScalar(v)) return undefined;
    else if (!before && v !== undefined && typeof v !== 'function' && typeof v !== 'symbol') {
      // A value with its own toJSON may serialise to nothing: its name would not be there.
      if (v !== null && typeof v === 'object' && 'toJSON' in v) return undefined;
      next = key;
      break;
    }
  }
  if (next !== undefined && !PLAIN_NAME.test(next)) return undefined;
  for (const c of checks) if (!isFlat(c, next)) return undefined;
  const start = line.indexOf(',"checks":');
  if (start < 0) return undefined;
  const end = next === undefined ? line.length - 1 : line.indexOf(`,${JSON.stringify(next)}:`, start);
  return end < 0 ? undefined : [start + 10, end];
}

const isScalar = (v: unknown) => v === null || typeof v !== 'object';
const PLAIN_NAME = /^\w+$/;

/** A check serialised as a flat object: plain members with scalar values, none named `name`. */
function isFlat(c: unknown, name: string | undefined): boolean {
  if (c === null || typeof c !== 'object' || Array.isArray(c) || 'toJSON' in c) return false;
  for (const key in c) if (key === name || !isScalar((c as Record<string, unknown>)[key])) return false;
  return true;
}
