import { MalformedError, VerificationError, toTresorError } from '../errors/index.js';
import {
  evaluateDocumentedReceipt,
  evaluateRoutingReceipt,
  parseDocumentedReceipt,
  parseRoutingReceipt,
  verifyRoutingReceipt,
  type CoordinatorKeyBinder,
} from '../pinaivu/index.js';
import { MAX_DOCUMENT_BYTES } from '../pinaivu/parse.js';
import type { Clock } from '../types.js';
import { toHex } from '../util/bytes.js';
import type { FetchOutcome } from './fetch.js';
import { receiptPath } from './id.js';
import type { Evaluation, ReceiptFormat } from './record.js';
import type { Check } from './verdict.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Where the coordinator's proof lives: `/v1/proofs/{uuid}`. */
export const proofPath = (id: string) => `/v1/proofs/${encodeURIComponent(id)}`;

export interface PinaivuFormatDeps {
  /** The coordinator key (hex) this daemon pinned by Nitro attestation, with what the pin recorded. */
  coordinator(pubkeyHex: string): { pcr0: string; summary: Record<string, unknown> } | undefined;
  /** Re-attest the coordinator (it may have restarted with a new key); rate-limited by the attester. */
  refreshCoordinator?(): Promise<void>;
  /** Fetch `/v1/proofs/{id}` over the upstream (the receipt fetch policy: retries, 404 grace). */
  getProof(id: string, endedAt: Date): Promise<FetchOutcome>;
  clock: Clock;
  /** How far the receipt's and the proof's timestamps may be from the exchange's end (default 600 s). */
  skewSeconds?: number;
}

/**
 * Pinaivu (docs/wire/aci.md §6). The documented receipt (`/v1/receipts/{request_id}`, seed 004)
 * is checked field by field against the exchange — `request_id` (the answer's), `model` (the
 * answer's), `timestamp` near the exchange — and its `coordinator_signature` is recorded
 * `unverifiable` (the scheme is not public), never verified. The coordinator's proof
 * (`/v1/proofs/{uuid}`) is then fetched and verified: Ed25519 over the BCS intent message by a
 * coordinator key this daemon pinned by Nitro attestation, same request id, plausible time.
 *
 * Verdict: `failed` if any check fails; `verified` only when the proof verifies under a pinned key
 * (the documented signature stays `unverifiable` in the checks); otherwise `unverifiable`
 * (`ERR_PINAIVU_UNVERIFIABLE`). Neither document hashes the exchanged bytes, so `verified` here
 * means "settled by an attested coordinator for this request", not "these bytes".
 */
export function pinaivuFormat(deps: PinaivuFormatDeps): ReceiptFormat {
  return {
    name: 'pinaivu',
    path: receiptPath,
    parse(body) {
      if (body.length > MAX_DOCUMENT_BYTES) throw new MalformedError('ERR_PINAIVU_RECEIPT_MALFORMED', `expected a receipt of at most ${MAX_DOCUMENT_BYTES} bytes, got ${body.length}`);
      return Buffer.from(body).toString('utf8');
    },
    async evaluate(text, job, id) {
      const at = deps.clock();
      const exchangeAt = new Date(job.ended_at);
      const skewSeconds = deps.skewSeconds ?? 600;
      const checks: Check[] = [];
      const receiptInfo: Record<string, unknown> = {};
      try {
        const doc = evaluateDocumentedReceipt(parseDocumentedReceipt(text), {
          requestId: id,
          ...(job.tresor?.routed_model !== undefined ? { model: job.tresor.routed_model } : {}),
          exchangeAt,
          skewSeconds,
          at,
        });
        checks.push(...doc.checks);
      } catch (e) {
        const err = toTresorError(e);
        checks.push({ name: 'receipt', result: 'fail', code: err.code, detail: err.message });
      }
      checks.push({ name: 'exchange_bytes', result: 'skip', detail: 'no Pinaivu document hashes the request or response bytes (aggregated_output_hash: preimage not public)' });

      let proofText: string | undefined;
      let proofVerified = false;
      if (!UUID_RE.test(id)) {
        checks.push({ name: 'proof', result: 'unverifiable', detail: `request_id ${id} is not a coordinator UUID: no proof to fetch` });
      } else {
        const fetched = await deps.getProof(id, exchangeAt);
        if (fetched.kind === 'missing') {
          checks.push({ name: 'proof', result: 'unverifiable', code: fetched.code, detail: `no coordinator proof: ${fetched.detail}` });
        } else if (fetched.kind === 'failed') {
          checks.push({ name: 'proof', result: 'fail', code: fetched.code, detail: fetched.detail });
        } else {
          proofText = fetched.jws;
          const pin: CoordinatorKeyBinder = async (key) => {
            const hex = toHex(key);
            let pinned = deps.coordinator(hex);
            let why = '';
            if (!pinned && deps.refreshCoordinator) {
              // A coordinator that restarted signs with a new key: attest it once more, then look again.
              await deps.refreshCoordinator().catch((e: unknown) => {
                why = ` (re-attestation failed: ${toTresorError(e).code})`;
              });
              pinned = deps.coordinator(hex);
            }
            if (!pinned) throw new VerificationError('ERR_PINAIVU_COORDINATOR_KEY', `the proof is signed by ${hex}, a coordinator key this daemon never established by Nitro attestation${why}`);
            return { pcrPinned: true, summary: { pcr0: pinned.pcr0 } };
          };
          try {
            const v = evaluateRoutingReceipt(await verifyRoutingReceipt(parseRoutingReceipt(proofText), { at, bindKey: pin }), { requestId: id, exchangeAt, skewSeconds, at });
            checks.push(...v.checks.map((c) => ({ ...c, name: `proof_${c.name}` })));
            proofVerified = v.verdict === 'verified';
            Object.assign(receiptInfo, { kid: v.coordinator_pubkey as string });
          } catch (e) {
            const err = toTresorError(e);
            const name = err.phase === 'malformed' ? 'proof' : err.code === 'ERR_PINAIVU_COORDINATOR_KEY' ? 'proof_coordinator_key' : 'proof_signature';
            checks.push({ name, result: 'fail', code: err.code, detail: err.message });
          }
        }
      }

      const failed = checks.find((c) => c.result === 'fail');
      const verdict: Evaluation['verdict'] = failed ? 'failed' : proofVerified ? 'verified' : 'unverifiable';
      const code = failed ? failed.code : verdict === 'unverifiable' ? 'ERR_PINAIVU_UNVERIFIABLE' : undefined;
      const open = verdict === 'unverifiable' ? checks.filter((c) => c.result === 'unverifiable').map((c) => `${c.name}: ${c.detail ?? 'unverifiable'}`) : [];
      return {
        verdict,
        ...(code ? { code } : {}),
        ...(failed?.detail ? { detail: failed.detail } : open.length ? { detail: open.join('; ') } : {}),
        receipt_type: proofText !== undefined ? 'pinaivu/receipt+proof' : 'pinaivu/receipt',
        ...(typeof receiptInfo.kid === 'string' ? { kid: receiptInfo.kid } : {}),
        checks,
        // Keep the proof beside the receipt: `tresor-verify pinaivu` re-checks it offline.
        ...(proofText !== undefined ? { archive: `{"receipt":${jsonOrString(text)},"proof":${jsonOrString(proofText)}}` } : {}),
      };
    },
  };
}

/** The fetched text as JSON when it parses (kept byte for byte), else as a JSON string. */
function jsonOrString(text: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch {
    return JSON.stringify(text);
  }
}
