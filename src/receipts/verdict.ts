import { bytesEqual, toHex } from '../util/bytes.js';
import { topLevelMemberText } from '../util/json-member.js';
import type { Verified } from '../types.js';
import { parseDigest } from './digest.js';
import type { VerifiedReceiptJws } from './jws.js';
import { verdictFromChecks, type Check, type Verdict } from '../checks/check.js';

/** A value when it is known at once, a promise only when it must be waited for (awaited only then). */
export type MaybePromise<T> = T | Promise<T>;

export { notPassed, verdictFromChecks, type Check, type CheckResult, type Verdict } from '../checks/check.js';

/** What is written to the audit log for a verified receipt. */
export interface ReceiptVerdict {
  verdict: Verdict;
  /** The first failing check's code. */
  code?: string;
  receipt_type?: string;
  kid?: string;
  signature_encoding: 'raw' | 'der';
  checks: Check[];
  digests: {
    request?: { expected?: string; computed?: string };
    response?: { expected?: string; computed?: string };
  };
}

/** What the daemon (or the CLI) knows independently of the receipt. Absent members are not checked. */
export interface ReceiptExpectations {
  receiptId?: string;
  /** The `tresor` block the app received. */
  tresor?: { requested_route?: unknown; routed_model?: unknown; failover?: unknown };
  /** SHA-256 of the request body as forwarded and of the response body as received. */
  requestSha256?: Uint8Array;
  responseSha256?: Uint8Array;
  /** When the exchange happened, for the `iat` plausibility check. */
  exchangeAt?: Date;
  /** Allowed distance between `iat` and the exchange (default 10 minutes). */
  iatSkewSeconds?: number;
  /**
   * What the key resolver established about the signing key against the trust bundle of the
   * identity in force (the daemon); absent: no trust bundle was consulted (the CLI, given a JWKS).
   */
  receiptKey?: Omit<Check, 'name'>;
}

/** Hooks for the evidence embedded in a receipt (filled by the attestation modules). */
export interface ReceiptHooks {
  /**
   * `at` is the receipt's `iat` (evidence is checked as of issuance), or now when absent. The inference hook is also called when the block is absent (a policy may require it).
   * `raw`: the router block's exact JSON text in the signed payload, when it could be cut out (a verifier may recognise a block it verified before by these exact bytes).
   */
  verifyRouterAttestation?(block: unknown, at: Date, raw?: string): MaybePromise<Omit<Check, 'name'>>;
  verifyInferenceAttestation?(block: unknown, at: Date): MaybePromise<Omit<Check, 'name'>>;
}

/** The evidence kind an attestation block names (`kind`, else `type`), or `unknown`. */
export function evidenceKind(block: unknown): string {
  const b = (typeof block === 'object' && block !== null ? block : {}) as { kind?: unknown; type?: unknown };
  return typeof b.kind === 'string' ? b.kind : typeof b.type === 'string' ? b.type : 'unknown';
}

function digestCheck(name: 'request_digest' | 'response_digest', claim: unknown, computed: Uint8Array | undefined): Check {
  const code = name === 'request_digest' ? 'ERR_RECEIPT_REQUEST_DIGEST' : 'ERR_RECEIPT_RESPONSE_DIGEST';
  if (computed === undefined) return { name, result: 'skip', detail: 'no bytes to compare with' };
  if (claim === undefined) return { name, result: 'fail', code, detail: `the receipt has no ${name}` };
  const d = parseDigest(claim);
  if (!d.ok) return { name, result: 'unverifiable', code: 'ERR_RECEIPT_DIGEST_FORM', detail: d.reason };
  return bytesEqual(d.bytes, computed)
    ? { name, result: 'pass', detail: d.form }
    : { name, result: 'fail', code, detail: `expected sha256:${toHex(computed)}, the receipt says ${String(claim)}` };
}

function equalCheck(name: string, code: string, claim: unknown, expected: unknown): Check {
  if (expected === undefined) return { name, result: 'skip', detail: 'nothing to compare: the app received no such value' };
  return claim === expected
    ? { name, result: 'pass' }
    : { name, result: 'fail', code, detail: `expected ${JSON.stringify(expected)}, the receipt says ${JSON.stringify(claim)}` };
}

/** The router block's exact text in the signed payload (cut out by the parse, or found now). */
const routerBlockText = (r: VerifiedReceiptJws) => (r.member?.name === 'router_attestation' ? r.member.text : topLevelMemberText(r.payloadText, 'router_attestation'));

/**
 * Policy over a verified receipt: every claim the app can check against what it saw. Collects
 * every check; the verdict follows `verdictFromChecks`.
 */
export async function evaluateReceipt(receipt: Verified<VerifiedReceiptJws>, expect: ReceiptExpectations, hooks: ReceiptHooks = {}): Promise<ReceiptVerdict> {
  return evaluateReceiptNow(receipt, expect, hooks);
}

/**
 * `evaluateReceipt`, the same checks in the same order, as a value when the hooks answer at once
 * (a router block verified before, no inference policy): the daemon's path, where a promise and
 * a turn of the microtask queue per hook per receipt bought nothing.
 */
export function evaluateReceiptNow(receipt: Verified<VerifiedReceiptJws>, expect: ReceiptExpectations, hooks: ReceiptHooks = {}): MaybePromise<ReceiptVerdict> {
  const c = receipt.payload;
  const checks: Check[] = [{ name: 'signature', result: 'pass', detail: `ES256 (${receipt.signatureEncoding === 'der' ? 'DER-encoded: non-standard' : 'raw r||s'})` }];
  checks.push({ name: 'receipt_key', ...(expect.receiptKey ?? { result: 'skip', detail: 'no trust bundle consulted: the key is from the JWKS given' }) });
  checks.push(equalCheck('jti', 'ERR_RECEIPT_JTI_MISMATCH', c.jti, expect.receiptId));
  checks.push(equalCheck('requested_route', 'ERR_RECEIPT_ROUTE_MISMATCH', c.requested_route, expect.tresor?.requested_route));
  checks.push(equalCheck('routed_model', 'ERR_RECEIPT_MODEL_MISMATCH', c.routed_model, expect.tresor?.routed_model));
  checks.push(equalCheck('failover', 'ERR_RECEIPT_FAILOVER_MISMATCH', c.failover, expect.tresor?.failover));
  if (expect.exchangeAt) {
    const skew = expect.iatSkewSeconds ?? 600;
    const at = Math.floor(expect.exchangeAt.getTime() / 1000);
    const iat = c.iat;
    checks.push(
      typeof iat === 'number' && Number.isInteger(iat) && Math.abs(iat - at) <= skew
        ? { name: 'iat', result: 'pass' }
        : { name: 'iat', result: 'fail', code: 'ERR_RECEIPT_IAT', detail: `expected iat within ${skew} s of ${at}, got ${JSON.stringify(iat)}` },
    );
  } else checks.push({ name: 'iat', result: 'skip', detail: 'nothing to compare: no exchange time' });
  checks.push(digestCheck('request_digest', c.request_digest, expect.requestSha256));
  checks.push(digestCheck('response_digest', c.response_digest, expect.responseSha256));
  const issuedAt = typeof c.iat === 'number' && Number.isFinite(c.iat) ? new Date(c.iat * 1000) : (expect.exchangeAt ?? new Date(0));
  const router = c.router_attestation;
  let routerCheck: MaybePromise<Omit<Check, 'name'>>;
  if (router === undefined) routerCheck = { result: 'skip', detail: 'absent' };
  else if (hooks.verifyRouterAttestation) routerCheck = hooks.verifyRouterAttestation(router, issuedAt, routerBlockText(receipt));
  else routerCheck = { result: 'unverifiable', code: 'ERR_RECEIPT_ATTESTATION_UNCHECKED', detail: 'no verifier for the router evidence here (no trust bundle)' };
  // The inference hook runs after the router hook has answered, as when each was awaited in turn.
  const rest = (r: Omit<Check, 'name'>): MaybePromise<ReceiptVerdict> => {
    checks.push({ name: 'router_attestation', ...r });
    const inference = c.inference_attestation ?? c.provider_attestation;
    const i = hooks.verifyInferenceAttestation ? hooks.verifyInferenceAttestation(inference, issuedAt) : { result: 'skip' as const, detail: inference === undefined ? 'absent' : `no policy (${evidenceKind(inference)} evidence not checked)` };
    return i instanceof Promise ? i.then((v) => verdictOf(receipt, expect, checks, v)) : verdictOf(receipt, expect, checks, i);
  };
  return routerCheck instanceof Promise ? routerCheck.then(rest) : rest(routerCheck);
}

/** The last checks and the verdict they make. */
function verdictOf(receipt: Verified<VerifiedReceiptJws>, expect: ReceiptExpectations, checks: Check[], inference: Omit<Check, 'name'>): ReceiptVerdict {
  const c = receipt.payload;
  checks.push({ name: 'inference_attestation', ...inference });
  // Context only: the key that counts is the JWS header's, checked above.
  checks.push({ name: 'receipt_signature', result: 'skip', detail: c.receipt_signature === undefined ? 'absent' : 'recorded, not checked (context; the key is the JWS header\'s)' });

  const { verdict, code } = verdictFromChecks(checks);
  // Member by member, in this order: a conditional spread per optional member cost ~0.6 µs.
  const v = { verdict } as ReceiptVerdict;
  if (code) v.code = code;
  if (typeof c.receipt_type === 'string') v.receipt_type = c.receipt_type;
  if (receipt.kid) v.kid = receipt.kid;
  v.signature_encoding = receipt.signatureEncoding;
  v.checks = checks;
  v.digests = { request: digestPair(c.request_digest, expect.requestSha256), response: digestPair(c.response_digest, expect.responseSha256) };
  return v;
}

/** What the receipt claims (when a string) and what was computed (when known), in that order. */
function digestPair(claim: unknown, computed: Uint8Array | undefined): { expected?: string; computed?: string } {
  const d: { expected?: string; computed?: string } = {};
  if (typeof claim === 'string') d.expected = claim;
  if (computed) d.computed = `sha256:${toHex(computed)}`;
  return d;
}
