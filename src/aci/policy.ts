import type { Check, Verdict } from '../checks/check.js';
import type { Verified } from '../types.js';
import { sha256Hex } from '../util/bytes.js';
import { DEFAULT_REQUIRED_EVENTS, DIGEST_PREFIX } from './constants.js';
import type { AciEvent, Json, JsonObject } from './parse.js';
import type { VerifiedAciReceipt } from './verify-receipt.js';

/** What we know independently of the receipt. Absent members are not checked. */
export interface AciReceiptExpectations {
  /** The exact request bytes we sent. */
  requestBody?: Uint8Array;
  /** The exact response bytes we received (the whole SSE stream for streams). */
  responseBody?: Uint8Array;
  /** SHA-256 (lowercase hex) of those bytes, when only the digest was kept (the daemon hashes as bytes flow). */
  requestSha256?: string;
  responseSha256?: string;
  receiptId?: string;
  chatId?: string;
  model?: string;
}

export interface AciReceiptPolicy {
  /** Require `upstream.verified` with result "verified" and required true when the event is present. */
  requireUpstreamVerified?: boolean;
  /** Also fail when there is no `upstream.verified` event at all (we need an aggregator's verified hop). */
  requireUpstreamEvent?: boolean;
  /** Upstream claims that must be `asserted` (e.g. `tee_attested`). */
  requiredClaims?: readonly string[];
  /** Pinned attested session ids; empty or absent means any. */
  allowedSessionIds?: readonly string[];
  /** Events that must be present (default: request.received, request.forwarded, response.returned). */
  requiredEvents?: readonly string[];
  /** Fail (rather than record) when the service reports rewriting the request or response. */
  forbidRewrites?: boolean;
}

/** Same shape as the Tresor receipt verdict (`src/receipts/verdict.ts`): `{verdict, code?, checks}` plus ACI detail. */
export interface AciReceiptVerdict {
  verdict: Verdict;
  code?: string;
  generation: 'C' | 'AB';
  receipt_id: string;
  key_id: string;
  algo: string;
  signing_input_sha256: string;
  checks: Check[];
  digests: {
    request?: { expected?: string; computed?: string };
    response?: { expected?: string; computed?: string };
  };
  /** Rewrites the service declared (`transparency.*_modified`) or that the hashes show. */
  rewrites: string[];
  /** `route.selected.target_route_id`, when present. */
  route?: string;
  upstream?: { result?: Json; required?: Json; session_id?: Json; model_id?: Json; channel_bindings?: Json; claims?: Json };
  /** Event types not known to this verifier (ignored, but covered by the signature). */
  unknown_events: string[];
}

const KNOWN_EVENTS = new Set([
  'request.received',
  'middleware.forwarded',
  'route.selected',
  'request.forwarded',
  'transparency.request_modified',
  'upstream.verified',
  'response.received',
  'transparency.response_modified',
  'response.returned',
]);

const first = (events: readonly AciEvent[], type: string) => events.find((e) => e.type === type);

function hashCheck(name: string, code: string, claim: Json | undefined, body: Uint8Array | string | undefined, field: string): { check: Check; computed?: string } {
  if (body === undefined) return { check: { name, result: 'skip', detail: 'no bytes to compare with' } };
  const computed = `${DIGEST_PREFIX}${typeof body === 'string' ? body : sha256Hex(body)}`;
  if (claim === undefined) return { check: { name, result: 'fail', code, detail: `the receipt has no ${field}` }, computed };
  return claim === computed
    ? { check: { name, result: 'pass', detail: field }, computed }
    : { check: { name, result: 'fail', code, detail: `expected ${field} ${computed} (our bytes), the receipt says ${String(claim)}` }, computed };
}

function equal(name: string, code: string, claim: unknown, expected: unknown): Check {
  if (expected === undefined) return { name, result: 'skip' };
  return claim === expected ? { name, result: 'pass' } : { name, result: 'fail', code, detail: `expected ${JSON.stringify(expected)}, the receipt says ${JSON.stringify(claim)}` };
}

/**
 * Policy over a verified receipt (§1.8 steps 2–5): event-log structure, body hashes against our
 * bytes, declared rewrites, route, and the upstream verification. Collects every check.
 */
export function evaluateAciReceipt(receipt: Verified<VerifiedAciReceipt>, expect: AciReceiptExpectations = {}, policy: AciReceiptPolicy = {}): AciReceiptVerdict {
  const events = receipt.events;
  const checks: Check[] = [{ name: 'signature', result: 'pass', detail: `${receipt.key.algo} key ${receipt.key.keyId}` }];
  checks.push(equal('receipt_id', 'ERR_ACI_RECEIPT_ID_MISMATCH', receipt.receiptId, expect.receiptId));
  checks.push(equal('chat_id', 'ERR_ACI_CHAT_ID_MISMATCH', receipt.chatId, expect.chatId));
  checks.push(equal('model', 'ERR_ACI_MODEL_MISMATCH', receipt.model, expect.model));

  checks.push(
    events[0]?.type === 'request.received'
      ? { name: 'event_order', result: 'pass' }
      : { name: 'event_order', result: 'fail', code: 'ERR_ACI_EVENT_ORDER', detail: `expected the first event to be request.received, got ${events[0]?.type ?? 'an empty event_log'}` },
  );
  // seq counts from 0 without gaps where present; the older form carries it on every event.
  const withSeq = events.filter((e) => e.seq !== undefined).length;
  if (withSeq === 0 && receipt.generation === 'C') checks.push({ name: 'event_seq', result: 'skip', detail: 'the current form has no seq' });
  else {
    const bad = events.findIndex((e, i) => e.seq !== i);
    checks.push(
      bad < 0
        ? { name: 'event_seq', result: 'pass' }
        : { name: 'event_seq', result: 'fail', code: 'ERR_ACI_EVENT_SEQ', detail: `expected event_log[${bad}].seq ${bad}, got ${String(events[bad]?.seq)}` },
    );
  }
  const required = policy.requiredEvents ?? DEFAULT_REQUIRED_EVENTS;
  const missing = required.filter((t) => !first(events, t));
  checks.push(missing.length === 0 ? { name: 'required_events', result: 'pass' } : { name: 'required_events', result: 'fail', code: 'ERR_ACI_EVENT_MISSING', detail: `missing ${missing.join(', ')}` });

  const received = first(events, 'request.received');
  const returned = first(events, 'response.returned');
  const responseField = receipt.generation === 'C' ? 'body_hash' : 'wire_hash';
  const req = hashCheck('request_body_hash', 'ERR_ACI_REQUEST_HASH', received?.raw.body_hash, expect.requestBody ?? expect.requestSha256, 'request.received.body_hash');
  const res = hashCheck('response_body_hash', 'ERR_ACI_RESPONSE_HASH', returned?.raw[responseField], expect.responseBody ?? expect.responseSha256, `response.returned.${responseField}`);
  checks.push(req.check, res.check);

  const rewrites = events.filter((e) => /^transparency\..*_modified$/.test(e.type)).map((e) => e.type);
  const forwarded = first(events, 'request.forwarded');
  if (received && forwarded && forwarded.raw.body_hash !== received.raw.body_hash && !rewrites.includes('transparency.request_modified')) {
    rewrites.push('request.forwarded differs from request.received');
  }
  checks.push(
    rewrites.length === 0
      ? { name: 'rewrites', result: 'pass', detail: 'none' }
      : policy.forbidRewrites
        ? { name: 'rewrites', result: 'fail', code: 'ERR_ACI_REWRITE', detail: rewrites.join('; ') }
        : { name: 'rewrites', result: 'pass', detail: `recorded: ${rewrites.join('; ')}` },
  );
  const routeEvent = first(events, 'route.selected');
  const route = typeof routeEvent?.raw.target_route_id === 'string' ? routeEvent.raw.target_route_id : undefined;
  checks.push(route === undefined ? { name: 'route', result: 'skip', detail: 'no route.selected event' } : { name: 'route', result: 'pass', detail: route });

  const up = first(events, 'upstream.verified');
  let upstream: AciReceiptVerdict['upstream'];
  if (!up) {
    checks.push(
      policy.requireUpstreamEvent
        ? { name: 'upstream_verified', result: 'fail', code: 'ERR_ACI_UPSTREAM_NOT_VERIFIED', detail: 'expected an upstream.verified event, got none' }
        : { name: 'upstream_verified', result: 'skip', detail: 'no upstream hop (direct service)' },
    );
  } else {
    const u = up.raw;
    const pick = (k: string) => (u[k] === undefined ? {} : { [k]: u[k] });
    upstream = { ...pick('result'), ...pick('required'), ...pick('session_id'), ...pick('model_id'), ...pick('channel_bindings'), ...pick('claims') };
    const problems: string[] = [];
    if (policy.requireUpstreamVerified) {
      if (u.result !== 'verified') problems.push(`expected result "verified", got ${JSON.stringify(u.result)}${typeof u.reason === 'string' ? ` (${u.reason.slice(0, 120)})` : ''}`);
      if (u.required !== true) problems.push(`expected required true, got ${JSON.stringify(u.required)}`);
    }
    const sid = typeof u.session_id === 'string' ? u.session_id : undefined;
    if (policy.allowedSessionIds && policy.allowedSessionIds.length > 0 && (sid === undefined || !policy.allowedSessionIds.includes(sid))) {
      problems.push(`expected session_id in the pinned set, got ${JSON.stringify(sid ?? null)}`);
    }
    const claims = (u.claims ?? {}) as JsonObject;
    for (const c of policy.requiredClaims ?? []) {
      const status = (claims[c] as JsonObject | undefined)?.status;
      if (status !== 'asserted') problems.push(`expected claim ${c} asserted, got ${JSON.stringify(status ?? null)}`);
    }
    checks.push(
      problems.length === 0
        ? { name: 'upstream_verified', result: 'pass', detail: `result ${JSON.stringify(u.result)}, required ${JSON.stringify(u.required)}` }
        : { name: 'upstream_verified', result: 'fail', code: 'ERR_ACI_UPSTREAM_NOT_VERIFIED', detail: problems.join('; ') },
    );
  }
  const unknown = events.filter((e) => !KNOWN_EVENTS.has(e.type)).map((e) => e.type);

  const failed = checks.find((c) => c.result === 'fail');
  return {
    verdict: failed ? 'failed' : 'verified',
    ...(failed?.code ? { code: failed.code } : {}),
    generation: receipt.generation,
    receipt_id: receipt.receiptId,
    key_id: receipt.key.keyId,
    algo: receipt.key.algo,
    signing_input_sha256: receipt.signingInputSha256,
    checks,
    digests: {
      request: { ...(typeof received?.raw.body_hash === 'string' ? { expected: received.raw.body_hash } : {}), ...(req.computed ? { computed: req.computed } : {}) },
      response: { ...(typeof returned?.raw[responseField] === 'string' ? { expected: returned.raw[responseField] as string } : {}), ...(res.computed ? { computed: res.computed } : {}) },
    },
    rewrites,
    ...(route !== undefined ? { route } : {}),
    ...(upstream ? { upstream } : {}),
    unknown_events: unknown,
  };
}
