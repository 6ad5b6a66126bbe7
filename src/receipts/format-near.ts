import type { AttestedSigner } from '../near/index.js';
import { parseNearSignature, verifyNearSignature } from '../near/index.js';
import { MalformedError, toTresorError } from '../errors/index.js';
import { validateReceiptId } from './id.js';
import type { Evaluation, ReceiptFormat } from './record.js';
import type { Check } from './verdict.js';

/** A signature object is a few hundred bytes; the ACI legacy alias embeds the receipt (256 KiB bound). */
export const MAX_NEAR_SIGNATURE_BYTES = 256 * 1024;

/**
 * NEAR AI Cloud per-chat signatures, also the aci/1 legacy alias (docs/wire/aci.md §7):
 * `GET /v1/signature/{chat id}?model=<served model>&signing_algo=ecdsa` with the key that made the
 * request. `text` = `<request sha256>:<response sha256>` (or `model:req:resp`), EIP-191 signed; the
 * signer must recover to `signing_address` and be a signer this daemon saw attested (a gateway or
 * model node whose TDX quote bound it with our nonce), and both hashes must be of the bytes that
 * flowed (the whole raw SSE stream for streams).
 */
export function nearFormat(deps: {
  signer(address: string): AttestedSigner | undefined;
  /** Look an unknown signer up (a model node the connection's report did not list); rate-limited by the attester. */
  lookupSigner?(address: string, model: string | undefined): Promise<void>;
}): ReceiptFormat {
  return {
    name: 'near',
    path: (id, job) => {
      const model = job.tresor?.routed_model;
      return `/v1/signature/${encodeURIComponent(validateReceiptId(id))}?${model !== undefined ? `model=${encodeURIComponent(model)}&` : ''}signing_algo=ecdsa`;
    },
    parse(body) {
      const text = Buffer.from(body).toString('utf8');
      if (body.length > MAX_NEAR_SIGNATURE_BYTES || !text.trimStart().startsWith('{')) throw new MalformedError('ERR_NEAR_MALFORMED', 'expected a signature JSON object');
      return text;
    },
    async evaluate(text, job) {
      const checks: Check[] = [];
      const fail = (name: string, code: string, detail: string): Evaluation => {
        checks.push({ name, result: 'fail', code, detail });
        return { verdict: 'failed', code, detail, receipt_type: 'near/ecdsa', checks };
      };
      let sig;
      try {
        sig = verifyNearSignature(parseNearSignature(text));
      } catch (e) {
        const err = toTresorError(e);
        return fail(err.phase === 'malformed' ? 'signature_format' : 'signature', err.code, err.message);
      }
      const expected = { request: `sha256:${sig.requestSha256}`, response: `sha256:${sig.responseSha256}` };
      checks.push({ name: 'signature', result: 'pass', detail: `EIP-191 ${sig.signingAlgo} signature recovers to ${sig.signer}` });
      let attested = deps.signer(sig.signer);
      let why = '';
      if (!attested && deps.lookupSigner) {
        await deps.lookupSigner(sig.signer, job.tresor?.routed_model).catch((e: unknown) => {
          why = ` (looking it up failed: ${toTresorError(e).code})`;
        });
        attested = deps.signer(sig.signer);
      }
      const out = (e: Evaluation): Evaluation => ({ ...e, kid: sig.signer, expected });
      if (!attested) return out(fail('attested_signer', 'ERR_NEAR_ATTESTED_ADDRESS', `the signature is by ${sig.signer}, a signing address no attestation report verified by this daemon names${why}`));
      checks.push({ name: 'attested_signer', result: 'pass', detail: `${attested.role}${attested.modelName ? ` ${attested.modelName}` : ''}, MRTD ${attested.mrtd}` });
      if (sig.requestSha256 !== job.request_sha256) {
        return out(fail('request_body_hash', 'ERR_NEAR_REQUEST_HASH', `expected the request hash in text to be ${job.request_sha256} (our bytes), got ${sig.requestSha256}`));
      }
      checks.push({ name: 'request_body_hash', result: 'pass' });
      if (sig.responseSha256 !== job.response_sha256) {
        return out(fail('response_body_hash', 'ERR_NEAR_RESPONSE_HASH', `expected the response hash in text to be ${job.response_sha256} (our bytes), got ${sig.responseSha256}`));
      }
      checks.push({ name: 'response_body_hash', result: 'pass' });
      const served = job.tresor?.routed_model;
      if (sig.model !== undefined && served !== undefined && sig.model !== served) {
        return out(fail('model', 'ERR_NEAR_MODEL', `expected the signed model ${served} (the answer's), got ${sig.model}`));
      }
      return out({ verdict: 'verified', receipt_type: 'near/ecdsa', checks });
    },
  };
}
