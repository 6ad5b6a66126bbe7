import type { TLSSocket } from 'node:tls';
import type { TresorError } from '../errors/index.js';

/**
 * Extension points the later capabilities plug into. All optional; when absent they cost
 * nothing on the hot path.
 */
export interface ExchangeInfo {
  upstream: string;
  requestId: string;
  method: string;
  /** Path and query as the app sent them (never headers or bodies). */
  path: string;
  /** Only the X-Tresor-* request headers (lower-cased), for receipt handling. */
  tresorHeaders: Readonly<Record<string, string>>;
  /** The app's own Authorization header, if it sent one (to fetch its receipt; never logged or persisted). */
  authorization?: string;
  startedAt: Date;
  /**
   * The connection the request went out on, noted when it is written (a field, set once per
   * request): its receipt record names that connection's pin, not whichever pin is newest.
   */
  connection?: ConnectionNote;
}

/**
 * Where a pinned connection slot notes the socket a request was written on. The exchange puts one
 * in its dispatch options under `CONNECTION_NOTE` (copies of the options share it).
 */
export interface ConnectionNote {
  socket?: TLSSocket;
}

export const CONNECTION_NOTE: unique symbol = Symbol('tresor.connection');

/** Dispatch options carrying `note` (a copy: the caller's object is left as it was). */
export function withConnectionNote<T extends object>(opts: T, note: ConnectionNote): T {
  return { ...opts, [CONNECTION_NOTE]: note };
}

/** The note a request's dispatch options carry, if any. */
export function connectionNote(opts: object): ConnectionNote | undefined {
  return (opts as { [CONNECTION_NOTE]?: ConnectionNote })[CONNECTION_NOTE];
}

/** What an observer may decide at the end of a held exchange. */
export interface ExchangeDecision {
  /** Refuse the response: a non-stream answer becomes this error, a stream ends with an SSE error event. */
  reject?: TresorError;
  /** Extra headers (only where the headers are still unsent: a held non-stream answer). */
  headers?: Record<string, string>;
  /** Trailer values, for the names the observer declared in `trailers` (chunked responses only). */
  trailers?: Record<string, string>;
}

export interface ExchangeObserver {
  /**
   * Hold the end of a successful answer until `onEnd` decides: a non-stream body is held whole
   * (headers included), a stream passes through except its final `data: [DONE]`.
   */
  hold?: boolean;
  /** Lower-case names of trailers this observer may set at the end (declared in the `Trailer` header). */
  trailers?: readonly string[];
  /** Each request body chunk exactly as forwarded upstream. Must not retain or mutate it. */
  onRequestChunk?(chunk: Uint8Array): void;
  /**
   * The request body is complete: every chunk was given to `onRequestChunk` and none follows (the
   * request digest can be final while the answer still streams). Optional for both sides.
   */
  onRequestEnd?(): void;
  onResponseStart?(status: number, headers: Readonly<Record<string, string | string[]>>): void;
  /** Each response body chunk exactly as received (and as written to the app). */
  onResponseChunk?(chunk: Uint8Array): void;
  /**
   * Awaited before the app sees the end of its response (for a 2xx answer: the chunk completing a
   * declared Content-Length, a stream's `data: [DONE]`, the chunked terminator), so whatever must be
   * durable by then (the receipt journal) is written first. Never throws to the proxy.
   */
  onEnd?(outcome: ExchangeOutcome): Promise<ExchangeDecision | undefined> | ExchangeDecision | undefined;
}

export interface ExchangeOutcome {
  ok: boolean;
  status: number;
  /** Why the exchange did not complete (client abort, upstream failure). */
  error?: string;
  requestBytes: number;
  responseBytes: number;
}

/** A size- and time-bounded GET on the upstream's attested pool. */
export type UpstreamGet = (
  path: string,
  init: { headers: Record<string, string>; timeoutMs: number; maxBytes: number },
) => Promise<{ status: number; headers: Readonly<Record<string, string | string[] | undefined>>; body: Uint8Array }>;

export interface DaemonHooks {
  /** Check a freshly established upstream TLS socket before the pool may use it (attestation pin). */
  verifyConnection?(upstream: string, socket: TLSSocket): Promise<void>;
  /**
   * The per-request pin check: called just before a request is written on a pooled TLS socket
   * (already accepted by `verifyConnection`); false closes that socket so the request goes out on a
   * new, verified connection. Must be a cheap lookup: it runs for every request.
   */
  connectionUsable?(upstream: string, socket: TLSSocket): boolean;
  /** Gate called before every upstream request; throw a TresorError to refuse it. */
  beforeDispatch?(upstream: string): Promise<void> | void;
  readiness?(upstream: string): { ready: boolean; reason?: string };
  /** Extra headers on every forwarded response (what was verified). */
  responseHeaders?(upstream: string): Record<string, string>;
  onExchange?(info: ExchangeInfo): ExchangeObserver | undefined;
  /** Extra per-upstream fields for /status. */
  status?(upstream: string): Record<string, unknown>;
}
