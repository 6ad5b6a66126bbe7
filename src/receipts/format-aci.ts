import { evaluateAciReceipt, parseAciReceipt, verifyAciReceipt, type AciReceiptPolicy, type AciTrustedKeyset } from '../aci/index.js';
import { MalformedError, toTresorError } from '../errors/index.js';
import { validateReceiptId } from './id.js';
import type { ReceiptFormat } from './record.js';

/** Bound on an ACI receipt document. */
export const MAX_ACI_RECEIPT_BYTES = 256 * 1024;

/**
 * ACI receipts (aci/1; docs/wire/aci.md): the signed document from `/v1/aci/receipts/{id}` (all
 * three wire generations), checked against a keyset this daemon itself established by
 * attestation (the receipt names it by digest), then its event log against the bytes that
 * flowed: `request.received` and `response.returned` hashes, required events, rewrites,
 * `upstream.verified` by policy.
 */
export function aciFormat(deps: { keysetByDigest(digest: string): AciTrustedKeyset | undefined; policy: AciReceiptPolicy }): ReceiptFormat {
  return {
    name: 'aci',
    path: (id) => `/v1/aci/receipts/${encodeURIComponent(validateReceiptId(id))}`,
    parse(body) {
      const text = Buffer.from(body).toString('utf8');
      if (body.length > MAX_ACI_RECEIPT_BYTES || !text.trimStart().startsWith('{')) throw new MalformedError('ERR_ACI_RECEIPT_MALFORMED', 'expected an ACI receipt JSON object');
      return text;
    },
    async evaluate(text, job, id) {
      try {
        const receipt = parseAciReceipt(text);
        const trust = deps.keysetByDigest(receipt.keysetDigest);
        if (!trust) {
          const detail = `the receipt names keyset ${receipt.keysetDigest}, which this daemon never established by attestation`;
          return { verdict: 'failed', code: 'ERR_ACI_RECEIPT_KEYSET_MISMATCH', detail, checks: [{ name: 'keyset', result: 'fail', code: 'ERR_ACI_RECEIPT_KEYSET_MISMATCH', detail }] };
        }
        const verified = verifyAciReceipt(receipt, trust);
        const v = evaluateAciReceipt(verified, { receiptId: id, requestSha256: job.request_sha256, responseSha256: job.response_sha256 }, deps.policy);
        return {
          verdict: v.verdict,
          ...(v.code ? { code: v.code } : {}),
          receipt_type: `aci/${v.generation}`,
          kid: v.key_id,
          checks: v.checks,
          expected: { request: v.digests.request?.expected, response: v.digests.response?.expected },
        };
      } catch (e) {
        const err = toTresorError(e);
        return { verdict: 'failed', code: err.code, detail: err.message, checks: [{ name: 'signature', result: 'fail', code: err.code, detail: err.message }] };
      }
    },
  };
}
