import { toTresorError } from '../errors/index.js';
import { loadNitroRoots, verifyNitroAttestation } from '../evidence/nitro/index.js';
import type { PcrSet } from '../evidence/nitro/policy.js';
import { verifySnpAttestation } from '../evidence/snp/index.js';
import { fromBase64 } from '../util/bytes.js';
import { toHex } from '../util/bytes.js';
import { parsePemCertificates, type Certificate } from '../x509/certificate.js';
import { evidenceKind, type Check } from './verdict.js';

/**
 * The operator's policy for the inference TEE (`receipts.inference_policy`): what the evidence
 * must show, per evidence kind. A kind without an entry is not allowed once any kind has one.
 */
export interface InferencePolicy {
  snp?: { allowedMeasurements: readonly string[] };
  nitro?: { allowedPcrs: readonly PcrSet[] };
}

/** True when the operator configured an allowlist for at least one evidence kind. */
export function hasInferencePolicy(p: InferencePolicy | undefined): p is InferencePolicy {
  return (p?.snp?.allowedMeasurements.length ?? 0) > 0 || (p?.nitro?.allowedPcrs.length ?? 0) > 0;
}

/**
 * The receipt's `inference_attestation` (legacy `provider_attestation`): the upstream provider's
 * TEE evidence at issuance. The public docs leave its shape open; ours (docs/wire.md §2):
 * `{"kind": "snp", "report_b64", "vcek_chain_pem"}` or `{"kind": "nitro", "document_b64"}`.
 * Without a policy it is informational: `skip: no policy`, never a pass for a document nobody
 * said to expect. With one it is required: the evidence is verified to its hardware roots as of
 * the receipt's `iat` (debug TEEs refused) and its measurement (SNP) or PCRs (Nitro) must be
 * allowed; an absent block or a kind this verifier cannot check is `unverifiable`.
 */
export function createInferenceCheck(policy: InferencePolicy | undefined, roots: { nitro?: readonly Certificate[]; amdArks?: readonly Certificate[] } = {}) {
  // Synchronous: every check here is (no fetch), so the receipt's evaluation need not wait a turn for it.
  return (block: unknown, at: Date): Omit<Check, 'name'> => {
    const kind = evidenceKind(block);
    if (!hasInferencePolicy(policy)) return { result: 'skip', detail: block === undefined ? 'absent' : `no policy (${kind} evidence not checked)` };
    if (block === undefined) return { result: 'unverifiable', code: 'ERR_RECEIPT_INFERENCE_ABSENT', detail: 'receipts.inference_policy is set, but the receipt carries no inference_attestation' };
    const b = (typeof block === 'object' && block !== null ? block : {}) as Record<string, unknown>;
    try {
      if (kind === 'snp' && typeof b.report_b64 === 'string' && typeof b.vcek_chain_pem === 'string') {
        if (!policy.snp) return notAllowed(kind);
        const [vcek, ...chain] = parsePemCertificates(b.vcek_chain_pem, 'inference_attestation.vcek_chain_pem');
        if (!vcek) return { result: 'fail', code: 'ERR_ATTEST_NO_VCEK', detail: 'inference_attestation.vcek_chain_pem is empty' };
        const report = fromBase64(b.report_b64, { field: 'inference_attestation.report_b64', code: 'ERR_RECEIPT_INFERENCE_MALFORMED' });
        const r = verifySnpAttestation(report, { vcek, chain, at, ...(roots.amdArks ? { arks: roots.amdArks } : {}), policy: { measurements: policy.snp.allowedMeasurements } });
        return { result: 'pass', detail: `snp MEASUREMENT ${toHex(r.MEASUREMENT)} allowed by receipts.inference_policy` };
      }
      if (kind === 'nitro' && typeof b.document_b64 === 'string') {
        if (!policy.nitro) return notAllowed(kind);
        const doc = fromBase64(b.document_b64, { field: 'inference_attestation.document_b64', code: 'ERR_RECEIPT_INFERENCE_MALFORMED' });
        const r = verifyNitroAttestation(doc, { at, roots: roots.nitro ?? loadNitroRoots(), policy: { allowedPcrs: policy.nitro.allowedPcrs } });
        return { result: 'pass', detail: `nitro PCR0 ${toHex(r.pcrs.get(0) ?? new Uint8Array())} allowed by receipts.inference_policy` };
      }
    } catch (e) {
      const err = toTresorError(e);
      return { result: 'fail', code: err.code, detail: err.message };
    }
    return { result: 'unverifiable', code: 'ERR_RECEIPT_INFERENCE_KIND_UNKNOWN', detail: `unverifiable: ${kind}` };
  };
}

function notAllowed(kind: string): Omit<Check, 'name'> {
  return { result: 'fail', code: 'ERR_RECEIPT_INFERENCE_NOT_ALLOWED', detail: `receipts.inference_policy allows no ${kind} evidence` };
}
