import type { IncomingMessage, ServerResponse } from 'node:http';
import { searchReceipts } from '../audit/search.js';
import { recentReceipts } from '../audit/tail.js';
import { TresorError } from '../errors/index.js';
import type { DaemonMetrics } from '../metrics/metrics.js';
import type { ReceiptPipeline } from '../receipts/pipeline.js';
import { FINAL_VERDICTS } from '../receipts/record.js';
import type { Clock } from '../types.js';
import { VERSION } from '../version.js';
import { sendError } from './errors-to-http.js';
import type { DaemonHooks } from '../transport/hooks.js';
import type { RecentErrors } from './recent-errors.js';
import { serveVerdict } from './receipts.js';
import { sendStatusPage } from './status-page.js';
import type { Upstream } from './upstream.js';

/** What the daemon's own endpoints read: the live state of the running daemon. */
export interface LocalState {
  upstreams: ReadonlyMap<string, Upstream>;
  listeners: readonly { upstream: string; url: string }[];
  /** Upstreams whose listener requires a local token. */
  tokenRequired(upstream: string): boolean;
  hooks: DaemonHooks;
  metrics: DaemonMetrics;
  pipeline(): ReceiptPipeline | undefined;
  recentErrors: RecentErrors;
  auditDir: string;
  clock: Clock;
  startedAt: number;
  shuttingDown(): boolean;
}

const VERDICTS: ReadonlySet<string> = new Set(FINAL_VERDICTS);

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** GET /readyz for the listener of `upstream`: 200 when attested and not shutting down, else 503 with the reasons. */
export function sendReadiness(res: ServerResponse, s: LocalState, upstream: string): void {
  const reasons: string[] = [];
  if (s.shuttingDown()) reasons.push('shutting down');
  const r = s.hooks.readiness?.(upstream);
  if (r && !r.ready) reasons.push(r.reason ?? 'not ready');
  const audit = s.pipeline()?.refusal(upstream);
  if (audit) reasons.push(`${audit.code}: ${audit.message}`);
  sendJson(res, reasons.length ? 503 : 200, { ready: reasons.length === 0, upstream, ...(reasons.length ? { reasons } : {}) });
}

/** GET /status: every upstream's configuration summary, counters, readiness, attestation and receipts. */
function statusBody(s: LocalState): Record<string, unknown> {
  return {
    service: 'tresor-attest',
    version: VERSION,
    uptimeSeconds: Math.round((Date.now() - s.startedAt) / 1000),
    shuttingDown: s.shuttingDown(),
    audit: s.pipeline()?.auditStatus() ?? null,
    upstreams: [...s.upstreams.values()].map((u) => ({
      name: u.name,
      url: u.config.url,
      listen: s.listeners.find((l) => l.upstream === u.name)?.url,
      apiKeyConfigured: u.authorization !== undefined,
      localTokenRequired: s.tokenRequired(u.name),
      counters: { ...u.counters },
      ready: s.hooks.readiness?.(u.name) ?? { ready: true },
      ...s.hooks.status?.(u.name),
    })),
  };
}

/** The status page's data: verdict counts, the audit log's newest receipts (optionally one verdict), recent errors. */
async function recentBody(s: LocalState, url: string): Promise<Record<string, unknown>> {
  const q = new URL(url, 'http://localhost').searchParams;
  const verdict = q.get('verdict');
  if (verdict !== null && verdict !== '' && !VERDICTS.has(verdict)) {
    throw new TresorError('usage', 'ERR_STATUS_FILTER', `verdict must be one of ${[...VERDICTS].join(', ')}`);
  }
  const limit = Math.min(200, Math.max(1, Math.trunc(Number(q.get('limit') ?? 50)) || 50));
  const pipeline = s.pipeline();
  return {
    generatedAt: s.clock().toISOString(),
    filter: verdict || null,
    counts: pipeline ? { ...pipeline.counters, pending: pipeline.pending } : null,
    receipts: pipeline ? await recentReceipts(s.auditDir, { limit, verdict: verdict || undefined }) : [],
    errors: s.recentErrors.list(),
  };
}

/** GET /status/receipts: one page of the whole audit log's records, filtered (the status page's search). */
async function receiptsBody(s: LocalState, url: string): Promise<Record<string, unknown>> {
  const q = new URL(url, 'http://localhost').searchParams;
  const opt = (k: string) => q.get(k) || undefined;
  const verdict = opt('verdict');
  if (verdict !== undefined && !VERDICTS.has(verdict)) throw new TresorError('usage', 'ERR_STATUS_FILTER', `verdict must be one of ${[...VERDICTS].join(', ')}`);
  const time = (k: 'from' | 'to') => {
    const v = opt(k);
    if (v === undefined) return undefined;
    const t = Date.parse(v);
    if (!Number.isFinite(t)) throw new TresorError('usage', 'ERR_STATUS_FILTER', `${k} must be a date and time (ISO 8601)`);
    return new Date(t).toISOString();
  };
  const query = {
    id: opt('id'),
    verdict,
    route: opt('route'),
    upstream: opt('upstream'),
    from: time('from'),
    to: time('to'),
    limit: Math.min(200, Math.max(1, Math.trunc(Number(q.get('limit') ?? 50)) || 50)),
    cursor: opt('cursor'),
  };
  const page = s.pipeline() ? await searchReceipts(s.auditDir, query) : { receipts: [], next: null, partial: false };
  return { generatedAt: s.clock().toISOString(), query: { ...query, cursor: undefined }, ...page };
}

/**
 * A GET or HEAD for one of the daemon's own pages (behind the listener's token, if it has one):
 * the status page, /status, /status/recent, /status/receipts, /metrics, /receipts/{id}. False when `path` is none
 * of them.
 */
export function serveLocalRead(req: IncomingMessage, res: ServerResponse, s: LocalState, path: string, url: string): boolean {
  if (path === '/') {
    sendStatusPage(res, req.method === 'HEAD');
    return true;
  }
  if (path === '/status') {
    sendJson(res, 200, statusBody(s));
    return true;
  }
  if (path === '/status/recent') {
    void recentBody(s, url).then(
      (body) => sendJson(res, 200, body),
      (e: unknown) => sendError(res, e),
    );
    return true;
  }
  if (path === '/status/receipts') {
    void receiptsBody(s, url).then(
      (body) => sendJson(res, 200, body),
      (e: unknown) => sendError(res, e),
    );
    return true;
  }
  if (path === '/metrics') {
    void s.metrics.exposition().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (e: unknown) => sendError(res, e),
    );
    return true;
  }
  if (path.startsWith('/receipts/')) {
    void serveVerdict(req, res, s.pipeline()).then((served) => {
      if (!served) sendError(res, new TresorError('usage', 'ERR_NOT_FOUND', `${path} is not a receipt verdict path`));
    });
    return true;
  }
  return false;
}
