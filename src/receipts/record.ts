import { toTresorError } from '../errors/index.js';
import type { Clock } from '../types.js';
import { fetchReceipt, type FetchDeps } from './fetch.js';
import { validateReceiptId } from './id.js';
import type { ReceiptJob } from './journal.js';
import type { KeyResolver } from './jws.js';
import { evaluateReceipt, type Check, type ReceiptHooks } from './verdict.js';
import { verifyReceiptJws } from './verify.js';

/** The final verdicts of the audit log (docs/wire.md §7). */
export type FinalVerdict = 'verified' | 'failed' | 'missing' | 'opted_out' | 'unverifiable';

/** One audit record: what happened to one exchange's receipt. Never a key, never a body. */
export interface ReceiptRecord {
  type: 'receipt';
  job: string;
  upstream: string;
  request_id: string;
  method: string;
  route: string;
  status: number;
  exchange_at: string;
  route_requested?: string;
  route_served?: string;
  failover?: boolean;
  receipt_id?: string;
  verdict: FinalVerdict;
  code?: string;
  detail?: string;
  receipt_type?: string;
  kid?: string;
  signature_encoding?: 'raw' | 'der';
  checks: Check[];
  digests: { request: { expected?: string; computed: string }; response: { expected?: string; computed: string } };
  attestation?: Record<string, unknown>;
  fetch_attempts?: number;
  /** SHA-256 of the archived JWS (the archive beside the log holds it). */
  receipt_jws_sha256?: string;
}

export interface RecordDeps {
  fetch: Omit<FetchDeps, 'authorization'>;
  /** The key to fetch with: the upstream's configured key, else the app's (memory only). */
  authorization: string | undefined;
  resolveKey: KeyResolver;
  hooks: ReceiptHooks;
  clock: Clock;
  sleep: (ms: number) => Promise<void>;
  /** How long to keep retrying an unreachable JWKS before the verdict is `unverifiable`. */
  jwksDeadlineMs: number;
}

const FETCH_CODES = new Set(['ERR_JWKS_FETCH', 'ERR_JWKS_TIMEOUT', 'ERR_JWKS_TOO_LARGE', 'ERR_FETCH_TOO_LARGE']);

/**
 * Turn a journaled job into its audit record: fetch the receipt, verify the JWS, evaluate every
 * claim against what the app received. Never throws: every failure is a verdict with a code.
 */
export async function recordFor(job: ReceiptJob, deps: RecordDeps): Promise<{ record: ReceiptRecord; jws?: string }> {
  const t = job.tresor ?? {};
  const base: ReceiptRecord = {
    type: 'receipt',
    job: job.job,
    upstream: job.upstream,
    request_id: job.request_id,
    method: job.method,
    route: job.route,
    status: job.status,
    exchange_at: job.started_at,
    ...(t.requested_route !== undefined ? { route_requested: t.requested_route } : {}),
    ...(t.routed_model !== undefined ? { route_served: t.routed_model } : {}),
    ...(t.failover !== undefined ? { failover: t.failover } : {}),
    ...(typeof job.receipt_id === 'string' ? { receipt_id: job.receipt_id } : {}),
    verdict: 'missing',
    checks: [],
    digests: { request: { computed: `sha256:${job.request_sha256}` }, response: { computed: `sha256:${job.response_sha256}` } },
    ...(job.attestation ? { attestation: job.attestation } : {}),
  };
  const end = (verdict: FinalVerdict, code?: string, detail?: string) => ({ record: { ...base, verdict, ...(code ? { code } : {}), ...(detail ? { detail } : {}) } });

  if (job.opted_out) return end('opted_out', undefined, 'X-Tresor-Receipt: false');
  if (!job.complete) return end('unverifiable', 'ERR_EXCHANGE_INCOMPLETE', `the exchange did not complete (${job.error ?? 'unknown'}): its bytes cannot match a receipt`);
  if (job.extract_error) return end('missing', 'ERR_RECEIPT_ID_UNREADABLE', job.extract_error);
  if (job.receipt_id === undefined) return end('missing', 'ERR_RECEIPT_ID_ABSENT', 'the response carries no tresor.receipt_id');
  let id: string;
  try {
    id = validateReceiptId(job.receipt_id);
  } catch (e) {
    return end('failed', toTresorError(e).code, (e as Error).message);
  }
  if (!deps.authorization) return end('missing', 'ERR_RECEIPT_KEY_UNAVAILABLE', 'the key that made the request is not available (an app-supplied key is never written to disk)');

  const fetched = await fetchReceipt(id, new Date(job.ended_at), { ...deps.fetch, authorization: deps.authorization });
  base.fetch_attempts = fetched.attempts;
  if (fetched.kind === 'missing') return end('missing', fetched.code, fetched.detail);
  if (fetched.kind === 'failed') return end('failed', fetched.code, fetched.detail);
  const jws = fetched.jws;

  const started = deps.clock().getTime();
  let bound = 250;
  for (;;) {
    try {
      const verified = await verifyReceiptJws(jws, { resolveKey: deps.resolveKey });
      const v = await evaluateReceipt(
        verified,
        {
          receiptId: id,
          tresor: t,
          requestSha256: Buffer.from(job.request_sha256, 'hex'),
          responseSha256: Buffer.from(job.response_sha256, 'hex'),
          exchangeAt: new Date(job.started_at),
        },
        deps.hooks,
      );
      return {
        jws,
        record: {
          ...base,
          verdict: v.verdict,
          ...(v.code ? { code: v.code } : {}),
          ...(v.receipt_type ? { receipt_type: v.receipt_type } : {}),
          ...(v.kid ? { kid: v.kid } : {}),
          signature_encoding: v.signature_encoding,
          checks: v.checks,
          digests: {
            request: { ...v.digests.request, computed: base.digests.request.computed },
            response: { ...v.digests.response, computed: base.digests.response.computed },
          },
        },
      };
    } catch (e) {
      const err = toTresorError(e);
      // An unreachable JWKS is retried with backoff; anything else is the receipt's fault.
      if (FETCH_CODES.has(err.code)) {
        const wait = Math.round(Math.random() * bound);
        bound = Math.min(10_000, bound * 2);
        if (deps.clock().getTime() + wait - started <= deps.jwksDeadlineMs) {
          await deps.sleep(wait);
          continue;
        }
        return { jws, record: { ...end('unverifiable', err.code, err.message).record, checks: [{ name: 'signature', result: 'unverifiable', code: err.code, detail: err.message }] } };
      }
      return { jws, record: { ...end('failed', err.code, err.message).record, checks: [{ name: 'signature', result: 'fail', code: err.code, detail: err.message }] } };
    }
  }
}
