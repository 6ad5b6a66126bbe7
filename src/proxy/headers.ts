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

/**
 * The response headers in which the daemon reports what it verified (the router's attestation,
 * its TLS key, the receipt's verdict), by family: a header whose name starts with one of these is
 * the daemon's alone. The router's copies are dropped in every attestation mode (docs/wire.md
 * §8.3). Tresor's other X-Tresor-* headers (X-Tresor-Receipt-Id, X-Tresor-Receipt, ...) are the
 * router's data and pass through.
 */
export const VERDICT_HEADER_FAMILIES = [
  'x-tresor-attestation',
  'x-tresor-measurement',
  'x-tresor-pcr',
  'x-tresor-workload-tag',
  'x-tresor-tls-spki',
  'x-tresor-trust-bundle',
  'x-tresor-receipt-verdict',
] as const;

/** The verdict family a (lower-case) header name belongs to, if any. */
export function verdictHeaderFamily(lower: string): string | undefined {
  if (!lower.startsWith('x-tresor-')) return undefined;
  return VERDICT_HEADER_FAMILIES.find((f) => lower.startsWith(f));
}

/**
 * Response headers for the app: hop-by-hop fields dropped; the daemon's verdict headers (above)
 * dropped and reported by family to `onVerdictHeader`; the router's CORS headers dropped (the
 * daemon answers for its own origin, §8.2); everything else kept.
 */
export function downstreamResponseHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  onVerdictHeader?: (family: string) => void,
): Record<string, string | string[]> {
  const nominated = connectionNominated(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || nominated.has(lower) || lower.startsWith('access-control-')) continue;
    const family = verdictHeaderFamily(lower);
    if (family !== undefined) {
      onVerdictHeader?.(family);
      continue;
    }
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
