import { toTresorError } from '../errors/index.js';
import type { Clock, Verified } from '../types.js';
import { parseReceiptResponse } from './fetch.js';
import { receiptPath } from './id.js';
import type { AllowedKeys } from './jwks.js';
import type { KeyResolver, VerifiedReceiptJws } from './jws.js';
import type { ReceiptKeyPolicy } from './key-policy.js';
import type { ReceiptJob } from './journal.js';
import type { Evaluation, ReceiptFormat } from './record.js';
import { evaluateReceiptNow, type MaybePromise, type ReceiptExpectations, type ReceiptHooks, type ReceiptVerdict } from './verdict.js';
import { verifyReceiptJwsNow } from './verify.js';

const JWKS_FETCH_CODES = new Set(['ERR_JWKS_FETCH', 'ERR_JWKS_TIMEOUT', 'ERR_JWKS_TOO_LARGE', 'ERR_FETCH_TOO_LARGE']);

/**
 * The record's verdict fields from a receipt's evaluation, member by member in the record's order
 * (no conditional spreads: ~0.6 µs each); `verbatim`: the parse's proof that the JWS needs no
 * escaping in JSON (util/jws.ts), for the archive line.
 */
function evaluation(v: ReceiptVerdict, verbatim?: string): Evaluation {
  const e = { verdict: v.verdict } as Evaluation;
  if (v.code) e.code = v.code;
  if (v.receipt_type) e.receipt_type = v.receipt_type;
  if (v.kid) e.kid = v.kid;
  e.signature_encoding = v.signature_encoding;
  e.checks = v.checks;
  e.expected = { request: v.digests.request?.expected, response: v.digests.response?.expected };
  if (verbatim !== undefined) e.verbatim = verbatim;
  return e;
}

/**
 * Tresor receipts (docs/wire.md §2): `{id, receipt}` from `/v1/receipts/{id}`, an ES256 JWS
 * verified with the router's JWKS, then every claim against what the app received. An
 * unreachable JWKS is retried with backoff until `jwksDeadlineMs` (the last try at that deadline),
 * then `unverifiable`.
 */
export function tresorFormat(deps: {
  resolveKey: (header: Readonly<Record<string, unknown>>, allowed?: AllowedKeys) => ReturnType<KeyResolver>;
  /** Which keys may sign (the trust bundle of a fresh identity); waits for one, never "any key". */
  keyPolicy: () => MaybePromise<ReceiptKeyPolicy>;
  hooks: ReceiptHooks;
  clock: Clock;
  sleep: (ms: number) => Promise<void>;
  jwksDeadlineMs: number;
}): ReceiptFormat {
  /**
   * The receipt under the key policy in force. A value when nothing need be waited for (the keys
   * cached, the router block verified before): no promise, no turn of the microtask queue.
   */
  const evaluateWith = (jws: string, job: ReceiptJob, id: string, key: ReceiptKeyPolicy): MaybePromise<Evaluation> => {
    if (key.check.result === 'unverifiable') {
      return { verdict: 'unverifiable', ...(key.check.code ? { code: key.check.code } : {}), ...(key.check.detail ? { detail: key.check.detail } : {}), checks: [{ name: 'receipt_key', ...key.check }] };
    }
    const resolveKey: KeyResolver = (header) => deps.resolveKey(header, key.allowed);
    const expect: ReceiptExpectations = {
      receiptId: id,
      tresor: job.tresor ?? {},
      requestSha256: Buffer.from(job.request_sha256, 'hex'),
      responseSha256: Buffer.from(job.response_sha256, 'hex'),
      exchangeAt: new Date(job.started_at),
      receiptKey: key.check,
    };
    // The parse's proof travels with the first attempt's verdict (a retried one goes without: the archive checks it).
    let verbatim: string | undefined;
    const evaluate = (r: Verified<VerifiedReceiptJws>) => {
      verbatim = r.verbatim;
      return evaluateReceiptNow(r, expect, deps.hooks);
    };
    const attempt = () => {
      const verified = verifyReceiptJwsNow(jws, { resolveKey });
      return verified instanceof Promise ? verified.then(evaluate) : evaluate(verified);
    };
    const started = deps.clock().getTime();
    try {
      const v = attempt();
      return v instanceof Promise ? v.then((r) => evaluation(r, verbatim), (e: unknown) => retried(e, attempt, started)) : evaluation(v, verbatim);
    } catch (e) {
      return retried(e, attempt, started);
    }
  };

  /**
   * A failed attempt: its verdict, or (the JWKS unreachable) another attempt after a backoff, until
   * `jwksDeadlineMs` after the first began (the last try at that deadline), then `unverifiable`.
   */
  const retried = async (first: unknown, attempt: () => MaybePromise<ReceiptVerdict>, started: number): Promise<Evaluation> => {
    let bound = 250;
    for (let err = toTresorError(first); ; ) {
      if (!JWKS_FETCH_CODES.has(err.code)) {
        const name = err.code === 'ERR_RECEIPT_KEY_NOT_IN_BUNDLE' ? 'receipt_key' : 'signature';
        return { verdict: 'failed', code: err.code, detail: err.message, checks: [{ name, result: 'fail', code: err.code, detail: err.message }] };
      }
      // Jittered backoff, the last wait cut to the deadline: the JWKS gets one more try
      // at the deadline, rather than none after the draw that would have overshot it.
      const left = deps.jwksDeadlineMs - (deps.clock().getTime() - started);
      const wait = Math.min(left, Math.round(Math.random() * bound));
      bound = Math.min(10_000, bound * 2);
      if (left <= 0) return { verdict: 'unverifiable', code: err.code, detail: err.message, checks: [{ name: 'signature', result: 'unverifiable', code: err.code, detail: err.message }] };
      await deps.sleep(wait);
      try {
        return evaluation(await attempt());
      } catch (e) {
        err = toTresorError(e);
      }
    }
  };

  return {
    name: 'jws',
    path: receiptPath,
    parse: parseReceiptResponse,
    evaluate(jws, job, id) {
      const key = deps.keyPolicy();
      return key instanceof Promise ? key.then((k) => evaluateWith(jws, job, id, k)) : evaluateWith(jws, job, id, key);
    },
  };
}
