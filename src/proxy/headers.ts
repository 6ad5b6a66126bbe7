import type { IncomingHttpHeaders } from 'node:http';
import { LOCAL_TOKEN_HEADER } from './local-auth.js';

/** RFC 9110 §7.6.1 connection-specific fields, plus the de-facto ones. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const NONE: ReadonlySet<string> = new Set();
const CLOSE: ReadonlySet<string> = new Set(['close']);

function connectionNominated(value: string | string[] | undefined): ReadonlySet<string> {
  // Most messages carry no Connection field, or only keep-alive (already hop-by-hop) or close: no set to build.
  if (value === undefined || value === 'keep-alive') return NONE;
  if (value === 'close') return CLOSE;
  const out = new Set<string>();
  for (const v of Array.isArray(value) ? value : value ? [value] : []) {
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

/**
 * Request headers to send upstream, from the app's raw header list (order and case kept):
 * hop-by-hop and Connection-nominated fields dropped, `host` replaced by undici, `expect`
 * handled locally, and `authorization` replaced when the daemon holds the real key.
 * X-Tresor-* and everything else pass untouched, except the listener's own local token
 * (X-Tresor-Local-Token), which never leaves the daemon.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  connection: string | string[] | undefined,
  opts: { authorization?: string | undefined; requestId: string },
): string[] {
  const nominated = connectionNominated(connection);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || nominated.has(lower) || lower === 'host' || lower === 'expect' || lower === 'x-request-id' || lower === LOCAL_TOKEN_HEADER) continue;
    if (lower === 'authorization' && opts.authorization !== undefined) continue;
    out.push(name, rawHeaders[i + 1] as string);
  }
  if (opts.authorization !== undefined) out.push('authorization', opts.authorization);
  out.push('x-request-id', opts.requestId);
  return out;
}

/** Response headers for the app: hop-by-hop fields dropped; everything else kept. */
export function downstreamResponseHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const nominated = connectionNominated(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || nominated.has(lower)) continue;
    out[lower] = value;
  }
  return out;
}

export function isEventStream(headers: Record<string, string | string[] | undefined>): boolean {
  const ct = headers['content-type'];
  const v = Array.isArray(ct) ? ct[0] : ct;
  return v !== undefined && v.toLowerCase().startsWith('text/event-stream');
}

/**
 * The router's non-stream budget: 180 s by default; `X-Tresor-Timeout-Seconds` (positive
 * integer) shortens it or extends it up to the hard cap. Invalid values are forwarded untouched
 * (the router answers 400) and leave our budget at the default.
 */
export function requestBudgetSeconds(header: string | string[] | undefined, defaultSeconds: number, maxSeconds: number): number {
  if (header === undefined || Array.isArray(header) || !/^\d{1,6}$/.test(header.trim())) return defaultSeconds;
  const n = Number(header.trim());
  if (n <= 0) return defaultSeconds;
  return Math.min(n, maxSeconds);
}
