import type { ServerResponse } from 'node:http';
import { toTresorError } from '../errors/index.js';

/**
 * The one table from a TresorError to what the app sees: HTTP status and an OpenAI-shaped
 * error body `{"error":{"message","type","code"}}`. The message is the error's own (which
 * never contains secrets or bodies); `code` is stable.
 */
export interface HttpError {
  status: number;
  type: string;
  code: string;
  message: string;
}

/** Codes with their own status/type; everything else is mapped by phase. */
const BY_CODE: Record<string, { status: number; type: string; code?: string }> = {
  ERR_UPSTREAM_CONNECT: { status: 502, type: 'upstream_error', code: 'upstream_unreachable' },
  ERR_UPSTREAM_TLS: { status: 502, type: 'upstream_error', code: 'upstream_tls_failed' },
  ERR_UPSTREAM_PROXY: { status: 502, type: 'upstream_error', code: 'upstream_proxy_failed' },
  ERR_UPSTREAM_TIMEOUT: { status: 504, type: 'upstream_error', code: 'upstream_timeout' },
  ERR_UPSTREAM_FAILED: { status: 502, type: 'upstream_error', code: 'upstream_error' },
  ERR_REQUEST_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  ERR_REQUEST_BODY_TIMEOUT: { status: 408, type: 'invalid_request_error', code: 'request_timeout' },
  ERR_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'not_found' },
  ERR_UNKNOWN_UPSTREAM: { status: 404, type: 'invalid_request_error', code: 'unknown_upstream' },
  ERR_SHUTTING_DOWN: { status: 503, type: 'service_unavailable', code: 'shutting_down' },
  ERR_AUDIT_DISK_FULL: { status: 503, type: 'service_unavailable', code: 'audit_disk_full' },
  ERR_AUDIT_WRITE_FAILED: { status: 503, type: 'service_unavailable', code: 'audit_write_failed' },
  ERR_LOCAL_AUTH: { status: 401, type: 'invalid_request_error', code: 'local_token_required' },
  ERR_HOST_NOT_ALLOWED: { status: 421, type: 'invalid_request_error', code: 'host_not_allowed' },
  ERR_ORIGIN_NOT_ALLOWED: { status: 403, type: 'invalid_request_error', code: 'origin_not_allowed' },
  ERR_REQUEST_PATH: { status: 400, type: 'invalid_request_error', code: 'invalid_path' },
};

export function toHttpError(e: unknown): HttpError {
  const err = toTresorError(e);
  const known = BY_CODE[err.code];
  if (known) return { status: known.status, type: known.type, code: known.code ?? err.code, message: err.message };
  switch (err.phase) {
    case 'upstream':
      return { status: 502, type: 'upstream_error', code: err.code, message: err.message };
    case 'malformed':
    case 'verify':
    case 'policy':
    case 'fetch':
      // The router did not prove what it runs: nothing was sent upstream.
      return { status: 502, type: 'attestation_error', code: err.code, message: err.message };
    case 'usage':
      return { status: 400, type: 'invalid_request_error', code: err.code, message: err.message };
    case 'internal':
      return { status: 500, type: 'internal_error', code: 'internal_error', message: 'internal error in tresor-attest' };
  }
}

export function sendError(res: ServerResponse, e: unknown, extraHeaders: Record<string, string> = {}): HttpError {
  const h = toHttpError(e);
  if (res.headersSent) {
    res.destroy();
    return h;
  }
  const body = JSON.stringify({ error: { message: h.message, type: h.type, code: h.code } });
  res.writeHead(h.status, {
    ...extraHeaders,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
  return h;
}
