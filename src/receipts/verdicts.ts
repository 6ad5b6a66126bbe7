import { lineToBytes, type Line } from '../util/appender.js';
import { topLevelMemberSpan } from '../util/json-member.js';

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
 * it is ~3 MB (the two keys and a Buffer per verdict). `get` parses a fresh copy.
 */
export class VerdictStore {
  private readonly byKey = new Map<string, Buffer>();
  private readonly waiters = new Map<string, Set<() => void>>();

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
    while (this.byKey.size > this.max) this.byKey.delete(this.byKey.keys().next().value as string);
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
 * A done verdict's JSON text as parts, its `checks` taken from the audit line of the same record
 * (`line`, the record as serialised: its `checks` member is `JSON.stringify(summary.checks)`), so
 * that the checks are serialised once per receipt, not twice. Parses to what
 * `JSON.stringify(summary)` does (test/receipts/verdicts.test.ts); without such a member, that.
 */
export function summaryJson(summary: VerdictSummary, line: string): Line {
  const span = topLevelMemberSpan(line, 'checks');
  if (!span || summary.checks === undefined) return JSON.stringify(summary);
  const { checks: _c, seq, ...head } = summary;
  const text = JSON.stringify(head);
  return [text.slice(0, -1), ',"checks":', line.slice(span[0], span[1]), seq === undefined ? '}' : `,"seq":${seq}}`];
}
