import { MalformedError, VerificationError } from '../errors/index.js';
import { evaluateSnpPolicy, formatTcb, parseSnpReport, verifySnpReport, type SnpPolicy } from '../evidence/snp/index.js';
import { fromBase64, toHex } from '../util/bytes.js';
import { parsePemCertificates, type Certificate } from '../x509/certificate.js';
import type { Crl } from '../x509/crl.js';
import type { TeeVerifier } from './tee.js';

/**
 * SEV-SNP evidence of an ACI report (docs/wire/aci.md): `evidence.snp_report_b64` (the 1184-byte
 * report, standard base64) and `evidence.vcek_chain_pem` (VCEK, then ASK, optionally ARK), the
 * same fields as the Tresor envelope. Verified with the SNP module to the pinned AMD roots (or
 * injected ARKs, e.g. a simulator's), debug guests refused, REPORT_DATA returned for the binding.
 */
export function snpTeeVerifier(
  opts: { arks?: readonly Certificate[]; policy?: Omit<SnpPolicy, 'reportData' | 'reportDataPrefix' | 'reportDataSuffix'>; crl?: (() => Crl) | undefined } = {},
): TeeVerifier {
  return async ({ teeType, evidence, at }) => {
    if (teeType !== 'sev_snp') throw new VerificationError('ERR_ACI_TEE_UNSUPPORTED', `expected attestation.tee_type "sev_snp" for this verifier, got ${JSON.stringify(teeType)}`);
    if (typeof evidence.snp_report_b64 !== 'string' || typeof evidence.vcek_chain_pem !== 'string') {
      throw new MalformedError('ERR_ACI_REPORT_MALFORMED', 'expected attestation.evidence.snp_report_b64 and vcek_chain_pem for tee_type sev_snp');
    }
    const [vcek, ...chain] = parsePemCertificates(evidence.vcek_chain_pem, 'attestation.evidence.vcek_chain_pem');
    if (!vcek) throw new VerificationError('ERR_ATTEST_NO_VCEK', 'attestation.evidence.vcek_chain_pem is empty: the report cannot be verified without its VCEK');
    const bytes = fromBase64(evidence.snp_report_b64, { field: 'attestation.evidence.snp_report_b64', code: 'ERR_ACI_REPORT_MALFORMED' });
    const crl = opts.crl?.();
    const report = verifySnpReport(parseSnpReport(bytes), { vcek, chain, ...(opts.arks && opts.arks.length ? { arks: opts.arks } : {}), ...(crl ? { crl } : {}), at });
    evaluateSnpPolicy(report, { ...opts.policy });
    return {
      reportData: report.REPORT_DATA,
      summary: { tee_type: 'sev_snp', measurement: toHex(report.MEASUREMENT), reported_tcb: formatTcb(report.reportedTcb), product: report.product },
    };
  };
}

/** One verifier per `tee_type` the deployment accepts. */
export function teeVerifierByType(verifiers: Readonly<Record<string, TeeVerifier>>): TeeVerifier {
  return async (input) => {
    const v = verifiers[input.teeType];
    if (!v) throw new VerificationError('ERR_ACI_TEE_UNSUPPORTED', `attestation.tee_type ${JSON.stringify(input.teeType)} is not supported (expected one of ${Object.keys(verifiers).join(', ')})`);
    return v(input);
  };
}
