import { TresorError } from '../errors/index.js';
import { FILE_RE } from './format.js';
import { linesNewestFirst, type LogPosition } from './read-backwards.js';

/** What the status page asks of the whole audit log (every field optional but `limit`). */
export interface ReceiptQuery {
  /** A receipt id or a request id (exact). */
  id?: string | undefined;
  verdict?: string | undefined;
  /** The route template, e.g. `/v1/chat/completions`. */
  route?: string | undefined;
  upstream?: string | undefined;
  /** ISO times: records at or after `from`, before `to`. */
  from?: string | undefined;
  to?: string | undefined;
  limit: number;
  /** Where the previous page ended (`next` of its answer). */
  cursor?: string | undefined;
}

export interface ReceiptPage {
  /** Whole audit records (the hash-chain fields included), newest first. Never a key or a body: records hold none. */
  receipts: Record<string, unknown>[];
  /** Pass as `cursor` for the page after this one; null at the start of the log. */
  next: string | null;
  /** True when this page stopped at the scan bound before `limit` matches (ask for `next` to go on). */
  partial: boolean;
}

/** Bound on the log read for one page (the search goes on from `next`). */
const MAX_SCAN_BYTES = 32 * 1024 * 1024;

export function encodeCursor(p: LogPosition): string {
  return Buffer.from(JSON.stringify([p.file, p.offset])).toString('base64url');
}

export function decodeCursor(c: string): LogPosition {
  try {
    const [file, offset] = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof file === 'string' && FILE_RE.test(file) && Number.isSafeInteger(offset) && (offset as number) >= 0) return { file, offset: offset as number };
  } catch {
    // falls through to the error below
  }
  throw new TresorError('usage', 'ERR_STATUS_FILTER', 'cursor: not a cursor this daemon issued');
}

function matches(r: Record<string, unknown>, q: ReceiptQuery): boolean {
  if (q.id && r.receipt_id !== q.id && r.request_id !== q.id) return false;
  if (q.verdict && r.verdict !== q.verdict) return false;
  if (q.route && r.route !== q.route) return false;
  if (q.upstream && r.upstream !== q.upstream) return false;
  if (q.to && !(typeof r.time === 'string' && r.time < q.to)) return false;
  return true;
}

/**
 * One page of the audit log's receipt records matching `q`, newest first, from the newest record
 * (or from `q.cursor`) backwards through every rotated file. The log is in time order, so the
 * search ends at the first record older than `q.from`.
 */
export async function searchReceipts(dir: string, q: ReceiptQuery): Promise<ReceiptPage> {
  const receipts: Record<string, unknown>[] = [];
  let scanned = 0;
  for await (const { text, start } of linesNewestFirst(dir, q.cursor ? decodeCursor(q.cursor) : undefined)) {
    scanned += text.length + 1;
    let r: Record<string, unknown> | undefined;
    try {
      r = JSON.parse(text) as Record<string, unknown>;
    } catch {
      r = undefined; // a torn line: skipped
    }
    if (q.from && typeof r?.time === 'string' && r.time < q.from) return { receipts, next: null, partial: false };
    if (r?.type === 'receipt' && matches(r, q)) {
      // One match more than the page: the next page starts with it (so the last page is never empty).
      if (receipts.length === q.limit) return { receipts, next: encodeCursor({ file: start.file, offset: start.offset + Buffer.byteLength(text) + 1 }), partial: false };
      receipts.push(r);
    }
    if (scanned >= MAX_SCAN_BYTES) return { receipts, next: encodeCursor(start), partial: true };
  }
  return { receipts, next: null, partial: false };
}
