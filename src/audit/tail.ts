import { notPassed, type Check } from '../checks/check.js';
import { linesNewestFirst } from './read-backwards.js';

/** What the status page shows of one audit record: no digests, only the checks that were not `pass`, never a key or a body. */
export interface RecentReceipt {
  seq: number;
  time: string;
  upstream: string;
  request_id: string;
  receipt_id?: string;
  route: string;
  status: number;
  verdict: string;
  code?: string;
  detail?: string;
  route_requested?: string;
  route_served?: string;
  /** Every check that was not `pass`, as `name: result [code] (reason)`. */
  checks_not_passed: string[];
}

/** Never read more than this much of the log for one answer (the page asks every few seconds). */
const MAX_SCAN_BYTES = 8 * 1024 * 1024;
const MAX_DETAIL = 240;

/**
 * The newest receipt records of the audit log, newest first, optionally only one verdict: read
 * backwards until `limit` records matched or MAX_SCAN_BYTES were read. A torn or foreign line is skipped.
 */
export async function recentReceipts(dir: string, opts: { limit: number; verdict?: string | undefined }): Promise<RecentReceipt[]> {
  const out: RecentReceipt[] = [];
  let scanned = 0;
  for await (const { text } of linesNewestFirst(dir)) {
    scanned += text.length + 1;
    const r = summarise(text);
    if (r && (!opts.verdict || r.verdict === opts.verdict)) out.push(r);
    if (out.length >= opts.limit || scanned >= MAX_SCAN_BYTES) break;
  }
  return out;
}

function summarise(line: string): RecentReceipt | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (r.type !== 'receipt' || typeof r.seq !== 'number' || typeof r.verdict !== 'string') return undefined;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const detail = str(r.detail);
  return {
    seq: r.seq,
    time: str(r.time) ?? '',
    upstream: str(r.upstream) ?? '',
    request_id: str(r.request_id) ?? '',
    ...(str(r.receipt_id) ? { receipt_id: str(r.receipt_id) as string } : {}),
    route: str(r.route) ?? '',
    status: typeof r.status === 'number' ? r.status : 0,
    verdict: r.verdict,
    ...(str(r.code) ? { code: str(r.code) as string } : {}),
    ...(detail ? { detail: detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL)}…` : detail } : {}),
    ...(str(r.route_requested) ? { route_requested: str(r.route_requested) as string } : {}),
    ...(str(r.route_served) ? { route_served: str(r.route_served) as string } : {}),
    checks_not_passed: notPassed(Array.isArray(r.checks) ? (r.checks as Check[]) : []).map((c) => (c.length > MAX_DETAIL ? `${c.slice(0, MAX_DETAIL)}…` : c)),
  };
}
