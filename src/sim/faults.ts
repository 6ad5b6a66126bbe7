/**
 * The simulator's fault switches, all in one place. Set them through `SimOptions.faults`,
 * `tresor-attest sim` flags, or at run time on `RunningSimulator.faults` (tests).
 */
export interface FaultState {
  /** Delay before response headers on inference routes (ms). */
  latencyMs: number;
  /** Delay between SSE chunks (ms). */
  chunkDelayMs: number;
  /** The next `count` requests whose path starts with `pathPrefix` answer `status` (with `Retry-After` when set). */
  statusStorm: { pathPrefix: string; status: number; count: number; retryAfterSeconds?: number } | null;
  /** Destroy the socket of the next stream after this many chunks (then resets to null). */
  resetStreamAfterChunks: number | null;
  /**
   * The next HTTP/2 request is not processed: its session gets a graceful GOAWAY (NO_ERROR) whose
   * last-stream-id lies just below that stream, as a router going away does; the streams already
   * running on the session finish (then resets to false).
   */
  goawayNextStream: boolean;
  /** Routes that are "unavailable", forcing failover to the next listed route. */
  unavailableRoutes: string[];
  /** Store receipts only this long after the response finished (404 until then). */
  receiptDelayMs: number;
  /** Receipts: sign with a key that is not in the JWKS. */
  receiptWrongKey: boolean;
  /** Receipts: change a claim after signing (`routed_model`). */
  receiptTamper: boolean;
  /** Receipts: DER-encode the ES256 signature (as in the docs' sample). */
  receiptDerSignature: boolean;
  /** Receipts: sign with this algorithm instead of ES256 (negative tests). */
  receiptAlg: 'ES256' | 'none' | 'HS256' | 'ES384';
  /** Receipts: claim values that differ from what the app received. */
  receiptClaimOverrides: Record<string, unknown> | null;
  /** JWKS: leave these kids out. */
  jwksDropKids: string[];
  /** A hostile router: every /v1 answer carries these response headers (e.g. a forged X-Tresor-Receipt-Verdict). */
  forgedResponseHeaders: Record<string, string> | null;
}

export function defaultFaults(): FaultState {
  return {
    latencyMs: 0,
    chunkDelayMs: 0,
    statusStorm: null,
    resetStreamAfterChunks: null,
    goawayNextStream: false,
    unavailableRoutes: [],
    receiptDelayMs: 0,
    receiptWrongKey: false,
    receiptTamper: false,
    receiptDerSignature: false,
    receiptAlg: 'ES256',
    receiptClaimOverrides: null,
    jwksDropKids: [],
    forgedResponseHeaders: null,
  };
}

/** Consume one unit of a status storm for `path`, if one applies. */
export function takeStorm(f: FaultState, path: string): { status: number; retryAfterSeconds?: number } | undefined {
  const s = f.statusStorm;
  if (!s || s.count <= 0 || !path.startsWith(s.pathPrefix)) return undefined;
  s.count -= 1;
  if (s.count === 0) f.statusStorm = null;
  return { status: s.status, ...(s.retryAfterSeconds !== undefined ? { retryAfterSeconds: s.retryAfterSeconds } : {}) };
}
