/**
 * Finds the `tresor` block (receipt id, routes, failover) in a response while its bytes flow to
 * the app, working on the same chunks without delaying or altering them. SSE: a byte-level line
 * splitter with a bounded line and event buffer; only events whose `data:` lines contain `"tresor"`
 * are parsed (one event may spread its data over several lines).
 * JSON: bounded accumulation, parsed once at the end. Chunk boundaries can fall anywhere.
 */
export interface TresorBlock {
  receipt_id?: string;
  requested_route?: string;
  routed_model?: string;
  failover?: boolean;
}

export interface ExtractResult {
  tresor?: TresorBlock;
  /** Why nothing could be extracted (too large, unparseable); the receipt is then `missing`. */
  error?: string;
}

export interface TresorExtractor {
  push(chunk: Uint8Array): void;
  end(): ExtractResult;
}

/** Longest SSE line, and event (its data lines together), we look into; longer ones are skipped, never buffered. */
export const MAX_SSE_LINE = 1024 * 1024;
/** Largest JSON body we parse for its tresor block. */
export const MAX_JSON_BODY = 8 * 1024 * 1024;

const TRESOR = Buffer.from('"tresor"');
const REQUEST_ID = Buffer.from('"request_id"');
const ID = Buffer.from('"id"');

/**
 * Where a router names the receipt in its answer: Tresor's `tresor` block, a top-level `request_id`
 * (Pinaivu, seed 004), or the completion's own top-level `id` (NEAR: the chat id its signature is filed under).
 */
export type ReceiptIdField = 'tresor' | 'request_id' | 'id';

/** A top-level string field is the receipt id (Pinaivu `request_id`, NEAR `id`), the answer's `model` the model that served. */
function pickTopLevel(value: unknown, field: 'request_id' | 'id'): TresorBlock | undefined {
  const o = value as Record<string, unknown> | null;
  const id = typeof o === 'object' && o !== null ? o[field] : undefined;
  if (typeof id !== 'string') return undefined;
  const t: TresorBlock = { receipt_id: id };
  if (typeof o?.model === 'string') t.routed_model = o.model;
  return t;
}

function pickTresor(value: unknown): TresorBlock | undefined {
  const t = (value as { tresor?: unknown } | null)?.tresor;
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return undefined;
  const o = t as Record<string, unknown>;
  // Member by member, in this order (the journal's): a conditional spread each cost ~0.6 µs.
  const b: TresorBlock = {};
  if (typeof o.receipt_id === 'string') b.receipt_id = o.receipt_id;
  if (typeof o.requested_route === 'string') b.requested_route = o.requested_route;
  if (typeof o.routed_model === 'string') b.routed_model = o.routed_model;
  if (typeof o.failover === 'boolean') b.failover = o.failover;
  return b;
}

/** What to look for (a byte string no event without the field can contain) and how to read the field from a parsed value. */
interface Picker {
  needle: Buffer;
  /**
   * What each SSE chunk is searched for: the needle without its opening quote. It is in every
   * chunk the needle is in; and the native search (which looks for the pattern's first byte, then
   * compares) no longer stops at every `"`, the most frequent byte of a JSON event.
   */
  scan: Buffer;
  pick(value: unknown): TresorBlock | undefined;
}

const picker = (needle: Buffer, pick: Picker['pick']): Picker => ({ needle, scan: needle.subarray(1), pick });

/** One per field, shared by every exchange: an extractor allocates no closures. */
const PICKERS: Readonly<Record<ReceiptIdField, Picker>> = {
  tresor: picker(TRESOR, pickTresor),
  request_id: picker(REQUEST_ID, (v) => pickTopLevel(v, 'request_id')),
  id: picker(ID, (v) => pickTopLevel(v, 'id')),
};

export function createTresorExtractor(kind: 'json' | 'sse', field: ReceiptIdField = 'tresor'): TresorExtractor {
  return kind === 'sse' ? new SseExtractor(PICKERS[field]) : new JsonExtractor(PICKERS[field]);
}

/** The chunk as a Buffer (a view, never a copy). */
const asBuffer = (chunk: Uint8Array): Buffer => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));

class JsonExtractor implements TresorExtractor {
  private chunks: Buffer[] = [];
  private size = 0;
  private tooLarge = false;

  constructor(private readonly how: Picker) {}

  push(chunk: Uint8Array): void {
    if (this.tooLarge) return;
    this.size += chunk.length;
    if (this.size > MAX_JSON_BODY) {
      this.tooLarge = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(Buffer.from(chunk));
  }

  end(): ExtractResult {
    if (this.tooLarge) return { error: `response body larger than ${MAX_JSON_BODY} bytes` };
    // push() copied each chunk already: a body that came in one chunk is not copied again.
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = [];
    if (body.indexOf(this.how.needle) < 0) return {};
    try {
      const t = this.how.pick(JSON.parse(body.toString('utf8')));
      return t ? { tresor: t } : {};
    } catch {
      return { error: 'response body is not JSON' };
    }
  }
}

const DATA = Buffer.from('data');

/** The chunk ends where an event ends (a blank line: LF LF, or CR LF CR LF). Read in place: nothing allocated per chunk. */
function endsAnEvent(b: Buffer): boolean {
  const n = b.length;
  if (n < 2 || b[n - 1] !== 0x0a) return false;
  return b[n - 2] === 0x0a || (n >= 4 && b[n - 2] === 0x0d && b[n - 3] === 0x0a && b[n - 4] === 0x0d);
}

/** The value of a `data` field line (`data:value`, `data: value`, or a bare `data`), or undefined for any other line. */
function dataValue(line: Buffer): Buffer | undefined {
  if (line.length < 4 || line.compare(DATA, 0, 4, 0, 4) !== 0) return undefined;
  if (line.length === 4) return line.subarray(4);
  if (line[4] !== 0x3a) return undefined;
  return line.subarray(line[5] === 0x20 ? 6 : 5);
}

const NO_BUFFERS: readonly Buffer[] = [];

/**
 * SSE per the event-stream format: an event is its `data` lines joined by "\n", dispatched at the
 * blank line that ends it, so a router may split one JSON object over several `data:` lines. Only
 * the current event's data is kept (bounded by MAX_SSE_LINE), never the stream; lines end in LF or
 * CRLF. Between events (the usual state after a chunk) it holds no buffer at all.
 */
class SseExtractor implements TresorExtractor {
  /** The partial line carried over from earlier chunks (copies). */
  private line: readonly Buffer[] = NO_BUFFERS;
  private lineSize = 0;
  private skipping = false;
  /** The current event's data lines (views into the chunk being pushed; copied if the event outlives it). */
  private data: Buffer[] | undefined;
  private eventSize = 0;
  private eventTooLong = false;
  private eventHasNeedle = false;
  private found: TresorBlock | undefined;
  private foundFinal = false;

  constructor(private readonly how: Picker) {}

  push(chunk: Uint8Array): void {
    const buf = asBuffer(chunk);
    // Most chunks are whole events without the needle: with no partial line or event pending and
    // the chunk ending at an event's end, no event of it can contain the needle (which has no
    // newline), and the splitter would end where it started. One search instead of a pass per line.
    if (this.lineSize === 0 && this.line.length === 0 && !this.skipping && this.eventSize === 0 && !this.eventTooLong && endsAnEvent(buf)) {
      if (buf.indexOf(this.how.scan) < 0) return;
      // The usual finish chunk: one event of one line (`data: {…}` and the blank line). Read as
      // that line and that event's end, without the splitter's per-line bookkeeping.
      const nl = buf.indexOf(0x0a);
      if (nl === buf.length - 2 || (nl === buf.length - 3 && buf[nl - 1] === 0x0d)) {
        if (nl <= MAX_SSE_LINE) this.onLine(buf.subarray(0, nl));
        return this.dispatch();
      }
    }
    this.split(buf);
  }

  end(): ExtractResult {
    if (!this.skipping && this.line.length > 0) this.onLine(Buffer.concat(this.line));
    this.dispatch(); // a last event without its blank line
    return this.found ? { tresor: this.found } : {};
  }

  /** The line splitter: each complete line to onLine; a partial line is kept (copied) for the next chunk. */
  private split(buf: Buffer): void {
    let line: Buffer[] = this.line.length > 0 ? [...this.line] : [];
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      const end = nl < 0 ? buf.length : nl;
      if (!this.skipping) {
        this.lineSize += end - start;
        if (this.lineSize > MAX_SSE_LINE) {
          this.skipping = true;
          line = [];
        } else if (end > start) line.push(buf.subarray(start, end));
      }
      if (nl < 0) break;
      if (!this.skipping) this.onLine(line.length === 1 ? (line[0] as Buffer) : Buffer.concat(line));
      else this.eventTooLong = true; // an over-long line spoils its event
      line = [];
      this.lineSize = 0;
      this.skipping = false;
      start = nl + 1;
    }
    // Keep copies of a partial line and of a pending event's data only: the app's chunk buffers are never retained.
    this.line = line.length > 0 ? [Buffer.from(Buffer.concat(line))] : NO_BUFFERS;
    if (this.data) this.data = this.data.map((b) => Buffer.from(b));
  }

  private onLine(raw: Buffer): void {
    const bytes = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw;
    if (bytes.length === 0) return this.dispatch();
    const value = dataValue(bytes);
    if (value === undefined || this.eventTooLong) return;
    this.eventSize += value.length + 1;
    if (this.eventSize > MAX_SSE_LINE) {
      this.eventTooLong = true;
      this.data = undefined;
      return;
    }
    if (!this.eventHasNeedle && value.indexOf(this.how.needle) >= 0) this.eventHasNeedle = true;
    (this.data ??= []).push(value);
  }

  private dispatch(): void {
    const parts = this.data;
    const wanted = this.eventHasNeedle && !this.eventTooLong;
    this.data = undefined;
    this.eventSize = 0;
    this.eventTooLong = false;
    this.eventHasNeedle = false;
    if (!wanted || !parts) return;
    let value: unknown;
    try {
      value = JSON.parse(parts.map((b) => b.toString('utf8')).join('\n'));
    } catch {
      return;
    }
    const t = this.how.pick(value);
    if (!t) return;
    // The finish chunk (finish_reason set) carries the receipt id; prefer it over earlier blocks.
    const final = ((value as { choices?: { finish_reason?: unknown }[] }).choices ?? []).some((c) => c?.finish_reason != null);
    if (!this.foundFinal || final) {
      this.found = t;
      this.foundFinal = final;
    }
  }
}
