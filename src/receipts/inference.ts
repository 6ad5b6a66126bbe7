import { toTresorError } from '../errors/index.js';
import { loadNitroRoots, verifyNitroAttestation } from '../evidence/nitro/index.js';
import { verifySnpAttestation } from '../evidence/snp/index.js';
import { fromBase64 } from '../util/bytes.js';
import { toHex } from '../util/bytes.js';
import { parsePemCertificates, type Certificate } from '../x509/certificate.js';
import type { Check } from './verdict.js';

/**
 * The receipt's `inference_attestation` (legacy `provider_attestation`): the upstream provider's
 * TEE evidence at issuance. The public docs leave its shape open; ours (docs/wire.md §2):
 * `{"kind": "snp", "report_b64", "vcek_chain_pem"}` or `{"kind": "nitro", "document_b64"}`.
 * Those two are verified to their hardware roots as of the receipt's `iat` (debug TEEs refused);
 * any other kind is `unverifiable: <kind>`, never a pass.
 */
export function createInferenceCheck(roots: { nitro?: readonly Certificate[] } = {}) {
  return async (block: unknown, at: Date): Promise<Omit<Check, 'name'>> => {
    const b = (typeof block === 'object' && block !== null ? block : {}) as Record<string, unknown>;
    const kind = typeof b.kind === 'string' ? b.kind : typeof b.type === 'string' ? b.type : 'unknown';
    try {
      if (kind === 'snp' && typeof b.report_b64 === 'string' && typeof b.vcek_chain_pem === 'string') {
        const [vcek, ...chain] = parsePemCertificates(b.vcek_chain_pem, 'inference_attestation.vcek_chain_pem');
        if (!vcek) return { result: 'fail', code: 'ERR_ATTEST_NO_VCEK', detail: 'inference_attestation.vcek_chain_pem is empty' };
        const r = verifySnpAttestation(fromBase64(b.report_b64, { field: 'inference_attestation.report_b64', code: 'ERR_RECEIPT_INFERENCE_MALFORMED' }), { vcek, chain, at, policy: {} });
        return { result: 'pass', detail: `snp MEASUREMENT ${toHex(r.MEASUREMENT)}` };
      }
      if (kind === 'nitro' && typeof b.document_b64 === 'string') {
        const doc = fromBase64(b.document_b64, { field: 'inference_attestation.document_b64', code: 'ERR_RECEIPT_INFERENCE_MALFORMED' });
        const r = verifyNitroAttestation(doc, { at, roots: roots.nitro ?? loadNitroRoots(), policy: {} });
        return { result: 'pass', detail: `nitro PCR0 ${toHex(r.pcrs.get(0) ?? new Uint8Array())}` };
      }
    } catch (e) {
      const err = toTresorError(e);
      return { result: 'fail', code: err.code, detail: err.message };
    }
    return { result: 'unverifiable', detail: `unverifiable: ${kind}` };
  };
}
