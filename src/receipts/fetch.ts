import { isAscii } from 'node:buffer';
import { describeCause, FetchError, MalformedError } from '../errors/index.js';
import type { Clock } from '../types.js';
import { MAX_RECEIPT_JWS_BYTES } from './jws.js';
import { receiptPath, validateReceiptId } from './id.js';
import type { UpstreamGet } from '../transport/hooks.js';

export type { UpstreamGet } from '../transport/hooks.js';

export interface ReceiptFetchPolicy {
  /** 404 is retried this long after the exchange ended (the receipt may not be stored yet). */
  notFoundGraceMs: number;
  /** Give up (→ `missing`) this long after the first attempt. */
  deadlineMs: number;
  /** Backoff bounds; each wait is a full-jitter draw below the current bound. */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** Per-attempt time limit. */
  attemptTimeoutMs: number;
}

export const DEFAULT_FETCH_POLICY: ReceiptFetchPolicy = {
  notFoundGraceMs: 10_000,
  deadlineMs: 120_000,
  minBackoffMs: 250,
  maxBackoffMs: 10_000,
  attemptTimeoutMs: 10_000,
};

/** Bound on the `{id, receipt}` response (a JWS plus a little JSON). */
export const MAX_RECEIPT_RESPONSE_BYTES = MAX_RECEIPT_JWS_BYTES + 4096;

export type FetchOutcome =
  | { kind: 'found'; jws: string; attempts: number }
  /** No receipt could be obtained: final HTTP error, 404 past the grace window, deadline. */
  | { kind: 'missing'; code: string; detail: string; attempts: number }
  /** The router answered 200 with something that is not a receipt. */
  | { kind: 'failed'; code: string; detail: string; attempts: number };

export interface FetchDeps {
  get: UpstreamGet;
  authorization: string | undefined;
  clock: Clock;
  sleep: (ms: number) => Promise<void>;
  random?: () => number;
  /** Called before every attempt (the per-upstream rate limit): a promise to wait for, or undefined to go on at once. */
  beforeAttempt?: () => Promise<void> | undefined;
  /** Where the receipt lives and how its 200 body is read (default: Tresor's `/v1/receipts/{id}` → `{id, receipt}`). */
  path?: (id: string) => string;
  parse?: (body: Uint8Array, id: string) => string;
  policy?: Partial<ReceiptFetchPolicy>;
}

/** `Retry-After` as seconds or an HTTP date, in ms from now; bounded to a minute. */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  let ms: number | undefined;
  if (/^\d{1,6}$/.test(v.trim())) ms = Number(v.trim()) * 1000;
  else {
    const at = Date.parse(v);
    if (!Number.isNaN(at)) ms = Math.max(0, at - now);
  }
  return ms === undefined ? undefined : Math.min(ms, 60_000);
}

/** `{ "id", "receipt" }` (docs §3.6) → the JWS, after checking the id echo. */
export function parseReceiptResponse(body: Uint8Array, id: string): string {
  return usualReceipt(Buffer.from(body.buffer, body.byteOffset, body.byteLength), id) ?? parseAnyReceiptResponse(body, id);
}

/** `parseReceiptResponse` for any body: the whole body parsed (and the oracle of `usualReceipt` in the tests). */
export function parseAnyReceiptResponse(body: Uint8Array, id: string): string {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    throw new MalformedError('ERR_RECEIPT_RESPONSE_MALFORMED', 'the receipt response is not JSON');
  }
  const o = doc as { id?: unknown; receipt?: unknown } | null;
  if (typeof o !== 'object' || o === null || typeof o.receipt !== 'string') {
    throw new MalformedError('ERR_RECEIPT_RESPONSE_MALFORMED', 'expected {"id", "receipt"} with a string receipt');
  }
  if (o.id !== undefined && o.id !== id) throw new MalformedError('ERR_RECEIPT_RESPONSE_MALFORMED', `the response is for receipt ${JSON.stringify(o.id)}, not ${JSON.stringify(id)}`);
  return o.receipt;
}

/**
 * The body as the router writes it, `{"id":<id>,"receipt":"<JWS>"}` (JSON.stringify: no
 * whitespace, the id first, the id this GET asked for), read without making the whole body a
 * string: only the JWS is made one. Parsing the body made it a string (~8 KB) and then the JWS
 * a second one (~8 KB). Undefined for any other body, which is parsed in full.
 *
 * Exactly what JSON.parse gives: with every byte ASCII (UTF-8 and Latin-1 read it alike), no `"`
 * or `\` between the quotes (no escape, no early end) and no control character (which JSON.parse
 * refuses in a string), the body is that object, and the string is those bytes.
 */
function usualReceipt(body: Buffer, id: string): string | undefined {
  const head = `{"id":${JSON.stringify(id)},"receipt":"`;
  const n = body.length;
  if (n < head.length + 2 || body[n - 1] !== 0x7d || body[n - 2] !== 0x22 || !isAscii(body) || body.toString('latin1', 0, head.length) !== head) return undefined;
  const literal = body.subarray(head.length, n - 2);
  if (literal.indexOf(0x22) >= 0 || literal.indexOf(0x5c) >= 0 || hasControlByte(literal)) return undefined;
  return body.toString('latin1', head.length, n - 2);
}

/**
 * Whether any byte of `b` (all ASCII) is below 0x20. Four bytes at a time: JSON.parse checks this
 * faster than a regular expression over the text (~5 µs for a receipt) or a byte loop could.
 */
function hasControlByte(b: Buffer): boolean {
  let i = 0;
  const n = b.length;
  // Byte by byte up to a 4-byte boundary of the memory (a Uint32Array must start on one).
  for (; i < n && ((b.byteOffset + i) & 3) !== 0; i++) if ((b[i] as number) < 0x20) return true;
  const words = (n - i) >>> 2;
  if (words > 0) {
    const w32 = new Uint32Array(b.buffer, b.byteOffset + i, words);
    for (let k = 0; k < words; k++) {
      const w = w32[k] as number;
      // "A byte less than 0x20" for bytes below 0x80: a borrow into a byte's top bit that the byte did not have.
      if (((w - 0x20202020) & ~w & 0x80808080) !== 0) return true;
    }
    i += words * 4;
  }
  for (; i < n; i++) if ((b[i] as number) < 0x20) return true;
  return false;
}

/**
 * `GET /v1/receipts/{id}` with the key that made the request, following the router's guidance:
 * `Retry-After` is honoured; 429/5xx and network errors back off from about 250 ms to 10 s with
 * full jitter; 404 is retried during a short grace window (the receipt may not be stored yet),
 * then the receipt is `missing`; 401/403 and other final statuses are recorded as such.
 * `endedAt` is when the exchange ended (the grace window counts from there).
 */
export async function fetchReceipt(id: string, endedAt: Date, deps: FetchDeps): Promise<FetchOutcome> {
  const p = { ...DEFAULT_FETCH_POLICY, ...deps.policy };
  const random = deps.random ?? Math.random;
  const path = (deps.path ?? receiptPath)(validateReceiptId(id));
  const parse = deps.parse ?? parseReceiptResponse;
  const start = deps.clock().getTime();
  const headers: Record<string, string> = { accept: 'application/json', ...(deps.authorization ? { authorization: deps.authorization } : {}) };
  let bound = p.minBackoffMs;
  let attempts = 0;
  let last = { code: 'ERR_RECEIPT_FETCH_DEADLINE', detail: 'no attempt made' };
  for (;;) {
    const turn = deps.beforeAttempt?.();
    if (turn) await turn;
    attempts++;
    let waitMs: number | undefined;
    try {
      const res = await deps.get(path, { headers, timeoutMs: p.attemptTimeoutMs, maxBytes: MAX_RECEIPT_RESPONSE_BYTES });
      const now = deps.clock().getTime();
      if (res.status === 200) {
        try {
          return { kind: 'found', jws: parse(res.body, id), attempts };
        } catch (e) {
          return { kind: 'failed', code: (e as MalformedError).code, detail: (e as Error).message, attempts };
        }
      }
      if (res.status === 401 || res.status === 403) {
        return { kind: 'missing', code: 'ERR_RECEIPT_UNAUTHORIZED', detail: `GET ${path} answered HTTP ${res.status}: the key that made the request is not accepted`, attempts };
      }
      if (res.status === 404) {
        last = { code: 'ERR_RECEIPT_NOT_FOUND', detail: `GET ${path} answered 404 for ${Math.round((now - endedAt.getTime()) / 1000)} s after the exchange` };
        if (now - endedAt.getTime() >= p.notFoundGraceMs) return { kind: 'missing', ...last, attempts };
      } else if (res.status === 429 || res.status >= 500) {
        last = { code: 'ERR_RECEIPT_FETCH_STATUS', detail: `GET ${path} answered HTTP ${res.status}` };
        waitMs = retryAfterMs(res.headers['retry-after'], now);
      } else {
        return { kind: 'missing', code: 'ERR_RECEIPT_FETCH_STATUS', detail: `GET ${path} answered HTTP ${res.status}`, attempts };
      }
    } catch (e) {
      const code = e instanceof FetchError ? e.code : 'ERR_RECEIPT_FETCH';
      last = { code, detail: `GET ${path} failed: ${describeCause(e)}` };
    }
    waitMs ??= Math.round(random() * bound);
    bound = Math.min(p.maxBackoffMs, bound * 2);
    if (deps.clock().getTime() + waitMs - start > p.deadlineMs) {
      return { kind: 'missing', code: last.code, detail: `${last.detail}; gave up after ${attempts} attempts`, attempts };
    }
    await deps.sleep(waitMs);
  }
}
