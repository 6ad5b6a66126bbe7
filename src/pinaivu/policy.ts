import type { Check, Verdict } from '../checks/check.js';
import type { Verified } from '../types.js';
import { toHex } from '../util/bytes.js';
import type { DocumentedReceipt } from './parse.js';
import type { VerifiedRoutingReceipt } from './verify.js';

/** Same shape as the Tresor receipt verdict (`src/receipts/verdict.ts`): `{verdict, code?, checks}`. */
export interface PinaivuVerdict {
  verdict: Verdict;
  code?: string;
  checks: Check[];
  [extra: string]: unknown;
}

export interface PinaivuExpectations {
  /** The request id from the completion (UUID for proofs, `req_…` for the documented receipt). */
  requestId?: string;
  /** The model we asked for (documented receipt only: the proof does not carry it). */
  model?: string;
  /** When the exchange happened: the timestamp must be within `skewSeconds` of it. */
  exchangeAt?: Date;
  /** Default 600 s. */
  skewSeconds?: number;
  /** Verification time: a timestamp later than this (plus 5 min clock skew) is implausible. */
  at: Date;
}

const FUTURE_SKEW_MS = 5 * 60 * 1000;

function verdictOf(checks: Check[], best: Verdict): { verdict: Verdict; code?: string } {
  const failed = checks.find((c) => c.result === 'fail');
  if (failed) return { verdict: 'failed', ...(failed.code ? { code: failed.code } : {}) };
  return { verdict: checks.some((c) => c.result === 'unverifiable') ? 'unverifiable' : best };
}

function timeCheck(name: string, t: Date, e: PinaivuExpectations): Check {
  if (t.getTime() > e.at.getTime() + FUTURE_SKEW_MS) return { name, result: 'fail', code: 'ERR_PINAIVU_TIMESTAMP', detail: `expected a time not after ${e.at.toISOString()}, got ${t.toISOString()}` };
  if (e.exchangeAt) {
    const skew = (e.skewSeconds ?? 600) * 1000;
    if (Math.abs(t.getTime() - e.exchangeAt.getTime()) > skew) {
      return { name, result: 'fail', code: 'ERR_PINAIVU_TIMESTAMP', detail: `expected within ${skew / 1000} s of the exchange at ${e.exchangeAt.toISOString()}, got ${t.toISOString()}` };
    }
  }
  return { name, result: 'pass', detail: t.toISOString() };
}

/**
 * Policy over a verified coordinator proof. The signature covers only the settlement subset:
 * `client_id`, peer ids, `proof_ids` and `bid_set_hash` are reported as unsigned, never relied on.
 */
export function evaluateRoutingReceipt(r: Verified<VerifiedRoutingReceipt>, e: PinaivuExpectations): PinaivuVerdict {
  const checks: Check[] = [{ name: 'signature', result: 'pass', detail: `Ed25519 by ${toHex(r.coordinatorPubkey)} over BCS IntentMessage` }];
  if (!r.binding) checks.push({ name: 'coordinator_key', result: 'unverifiable', detail: 'no Nitro attestation given: the key is not bound to an enclave' });
  else if (!r.binding.pcrPinned) checks.push({ name: 'coordinator_key', result: 'unverifiable', detail: 'attested by AWS Nitro, but no PCR allowlist was given: any enclave image' });
  else checks.push({ name: 'coordinator_key', result: 'pass', detail: 'Nitro attestation with the key as public_key, PCRs allowed' });
  checks.push(
    e.requestId === undefined
      ? { name: 'request_id', result: 'skip' }
      : e.requestId.toLowerCase() === r.requestId
        ? { name: 'request_id', result: 'pass' }
        : { name: 'request_id', result: 'fail', code: 'ERR_PINAIVU_REQUEST_ID', detail: `expected ${e.requestId}, the proof says ${r.requestId}` },
  );
  checks.push(timeCheck('timestamp', new Date(Number(r.timestampMs)), e));
  checks.push({ name: 'unsigned_fields', result: 'skip', detail: 'client_id, primary_peer_id, helper_peer_ids, proof_ids, bid_set_hash are not signed by the coordinator' });
  return {
    ...verdictOf(checks, 'verified'),
    checks,
    request_id: r.requestId,
    coordinator_pubkey: toHex(r.coordinatorPubkey),
    aggregated_output_hash: toHex(r.aggregatedOutputHash),
    payouts: r.payouts.map((p) => ({ sui_address: p.suiAddress, amount_nanox: p.amountNanox.toString() })),
    timestamp_ms: r.timestampMs.toString(),
    signed_message_sha256: r.signedMessageSha256,
    ...(r.binding ? { attestation: r.binding.summary } : {}),
  };
}

/**
 * The documented `/v1/receipts/{request_id}`: check what can be checked; the signature's scheme and
 * message are not public, so it is `unverifiable` and the verdict is never `verified`.
 */
export function evaluateDocumentedReceipt(d: DocumentedReceipt, e: PinaivuExpectations): PinaivuVerdict {
  const eq = (name: string, code: string, got: string, want: string | undefined): Check =>
    want === undefined ? { name, result: 'skip' } : got === want ? { name, result: 'pass' } : { name, result: 'fail', code, detail: `expected ${JSON.stringify(want)}, the receipt says ${JSON.stringify(got)}` };
  const checks: Check[] = [
    eq('request_id', 'ERR_PINAIVU_REQUEST_ID', d.requestId, e.requestId),
    eq('model', 'ERR_PINAIVU_MODEL', d.model, e.model),
    timeCheck('timestamp', d.timestamp, e),
    { name: 'coordinator_signature', result: 'unverifiable', detail: 'signature scheme not public' },
  ];
  return { ...verdictOf(checks, 'unverifiable'), checks, request_id: d.requestId, node_id: d.nodeId, model: d.model, payment_amount: d.paymentAmount };
}
