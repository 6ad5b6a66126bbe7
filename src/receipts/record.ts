import { toTresorError } from '../errors/index.js';
import { FlatListMemo } from '../util/frozen-json.js';
import { fetchReceipt, type FetchDeps } from './fetch.js';
import { validateReceiptId } from './id.js';
import type { ReceiptJob } from './journal.js';
import type { Check, MaybePromise } from './verdict.js';

/** The final verdicts of the audit log (docs/wire.md §7). */
export const FINAL_VERDICTS = ['verified', 'failed', 'missing', 'opted_out', 'unverifiable'] as const;
export type FinalVerdict = (typeof FINAL_VERDICTS)[number];

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
  /** `jws` (Tresor) or `aci`: how the archived receipt is re-checked. */
  receipt_format?: string;
  /** SHA-256 of the archived JWS (the archive beside the log holds it). */
  receipt_jws_sha256?: string;
}

/** What verifying one receipt yields: the record's verdict fields, and the digests the receipt claims (any form). */
export type Evaluation = Pick<ReceiptRecord, 'verdict' | 'code' | 'detail' | 'receipt_type' | 'kid' | 'signature_encoding' | 'checks'> & {
  expected?: { request?: string | undefined; response?: string | undefined };
  /** What to archive instead of the fetched receipt (e.g. the receipt together with a proof fetched beside it). */
  archive?: string;
  /** The fetched receipt, when its parse proved it needs no escaping in JSON (util/jws.ts ParsedJws.verbatim). */
  verbatim?: string;
};

/** One router's receipt format: where it lives, how it is read, how it is verified. */
export interface ReceiptFormat {
  /** Recorded as `receipt_format` (and tells `tresor-verify audit` how to re-check the archive). */
  name: string;
  /** Where to fetch it; `job` gives what the answer said (e.g. the model NEAR's signature endpoint asks for). */
  path(id: string, job: ReceiptJob): string;
  /** A 200 body → the receipt text to archive and verify (throws MalformedError). */
  parse(body: Uint8Array, id: string): string;
  /** Never throws for a bad receipt: every failure is a verdict with a code. A value when nothing was waited for. */
  evaluate(text: string, job: ReceiptJob, id: string): MaybePromise<Evaluation>;
}

export interface RecordDeps {
  fetch: Omit<FetchDeps, 'authorization' | 'path' | 'parse'>;
  /** The key to fetch with: the upstream's configured key, else the app's (memory only). */
  authorization: string | undefined;
  format: ReceiptFormat;
}

/**
 * The record's fields known from the journaled job alone (verdict `missing` until decided). Built
 * member by member in the record's order: a conditional spread per optional member cost ~0.6 µs.
 */
export function baseRecord(job: ReceiptJob): ReceiptRecord {
  const r = { type: 'receipt', job: job.job, upstream: job.upstream, request_id: job.request_id, method: job.method, route: job.route, status: job.status, exchange_at: job.started_at } as ReceiptRecord;
  const t = job.tresor;
  if (t?.requested_route !== undefined) r.route_requested = t.requested_route;
  if (t?.routed_model !== undefined) r.route_served = t.routed_model;
  if (t?.failover !== undefined) r.failover = t.failover;
  if (typeof job.receipt_id === 'string') r.receipt_id = job.receipt_id;
  r.verdict = 'missing';
  r.checks = [];
  r.digests = { request: { computed: `sha256:${job.request_sha256}` }, response: { computed: `sha256:${job.response_sha256}` } };
  if (job.attestation) r.attestation = job.attestation;
  return r;
}

/** A record decided without fetching (e.g. the queue is full, the upstream is gone). */
export function recordWithout(job: ReceiptJob, verdict: FinalVerdict, code: string, detail: string): ReceiptRecord {
  return decided(baseRecord(job), verdict, code, detail);
}

/** `record` (a local object) decided: its verdict in place, then `code` and `detail` when given, in that order. */
function decided(record: ReceiptRecord, verdict: FinalVerdict, code?: string, detail?: string): ReceiptRecord {
  record.verdict = verdict;
  if (code) record.code = code;
  if (detail) record.detail = detail;
  return record;
}

/**
 * A verified receipt's checks are the same, text for text, for every receipt under one pin: the
 * record holds one shared list (frozen, its JSON text made once: util/frozen-json.ts) when the
 * checks equal a kept one member for member, so that the audit log splices that text in
 * (audit/format.ts serialise) instead of serialising ~1 KB of checks per record.
 */
const VERIFIED_CHECKS = new FlatListMemo<Check>(4);

function sharedChecks(checks: Check[]): Check[] {
  const kept = VERIFIED_CHECKS.shared(checks);
  if (kept) return kept as Check[]; // frozen: nothing after the verdict changes a record's checks
  VERIFIED_CHECKS.keep(checks);
  return checks;
}

/**
 * Turn a journaled job into its audit record: fetch the receipt, verify it, evaluate every
 * claim against what the app received. Never throws: every failure is a verdict with a code.
 */
export async function recordFor(job: ReceiptJob, deps: RecordDeps): Promise<{ record: ReceiptRecord; jws?: string; verbatim?: string }> {
  const base = baseRecord(job);
  const end = (verdict: FinalVerdict, code?: string, detail?: string) => ({ record: decided(base, verdict, code, detail) });

  if (job.opted_out) return end('opted_out', undefined, 'X-Tresor-Receipt: false');
  if (!job.complete) return end('unverifiable', 'ERR_EXCHANGE_INCOMPLETE', `the exchange did not complete (${job.error ?? 'unknown'}): its bytes cannot match a receipt`);
  if (job.extract_error) return end('missing', 'ERR_RECEIPT_ID_UNREADABLE', job.extract_error);
  if (job.receipt_id === undefined) return end('missing', 'ERR_RECEIPT_ID_ABSENT', 'the response carries no receipt id');
  let id: string;
  try {
    id = validateReceiptId(job.receipt_id);
  } catch (e) {
    return end('failed', toTresorError(e).code, (e as Error).message);
  }
  if (!deps.authorization) return end('missing', 'ERR_RECEIPT_KEY_UNAVAILABLE', 'the key that made the request is not available (an app-supplied key is never written to disk)');

  // Every member spelled out (the compiler checks that none is missed): `{ ...deps.fetch, more }`
  // cost ~2.4 µs per receipt (members added to a spread copy), this literal ~0.03 µs.
  const f = deps.fetch;
  const fetchDeps = {
    get: f.get, clock: f.clock, sleep: f.sleep, random: f.random, beforeAttempt: f.beforeAttempt, policy: f.policy,
    authorization: deps.authorization, path: (i: string) => deps.format.path(i, job), parse: deps.format.parse,
  } satisfies Record<keyof FetchDeps, unknown>;
  const fetched = await fetchReceipt(id, new Date(job.ended_at), fetchDeps);
  base.fetch_attempts = fetched.attempts;
  base.receipt_format = deps.format.name;
  if (fetched.kind === 'missing') return end('missing', fetched.code, fetched.detail);
  if (fetched.kind === 'failed') return end('failed', fetched.code, fetched.detail);
  const evaluated = deps.format.evaluate(fetched.jws, job, id);
  const { expected, archive, verbatim, ...v } = evaluated instanceof Promise ? await evaluated : evaluated;
  // Into the base record itself (a local object), not a copy of it: the same members in the same
  // order as `{ ...base, ...v, digests }` (members already there keep their place).
  Object.assign(base, v);
  if (base.verdict === 'verified') base.checks = sharedChecks(base.checks);
  const claimed = (e: string | undefined, computed: string) => (e !== undefined ? { expected: e, computed } : { computed });
  base.digests = { request: claimed(expected?.request, base.digests.request.computed), response: claimed(expected?.response, base.digests.response.computed) };
  // The proof goes with the text it was made for (the archive compares them): not with a replacement.
  return archive === undefined ? { jws: fetched.jws, verbatim, record: base } : { jws: archive, record: base };
}
