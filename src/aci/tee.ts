import { MalformedError, VerificationError } from '../errors/index.js';
import { fromHex, toHex } from '../util/bytes.js';
import type { Certificate } from '../x509/certificate.js';
import { evaluateTdxPolicy, parseDstackEventLog, parseTdxQuote, quoteFmspc, verifyTdxQuote, type TdxCollateralSource, type TdxPolicy } from '../evidence/tdx/index.js';
import type { JsonObject } from './parse.js';

/**
 * Verifies the TEE evidence of an ACI report and returns the 64-byte report-data slot it
 * attests (the caller compares it with `report_data ‖ 0^32`). One callback per deployment, so
 * `sev_snp` can be served by the SNP module without this module depending on it.
 */
export type TeeVerifier = (input: {
  teeType: string;
  evidence: JsonObject;
  /** What the slot must hold; a verifier may enforce it in its own policy too. */
  expectedReportData: Uint8Array;
  at: Date;
}) => Promise<{ reportData: Uint8Array; summary: Record<string, unknown> }>;

/**
 * dstack/TDX evidence (§1.3): `evidence.quote` (hex TDX quote) verified to the Intel root, then TDX
 * policy with REPORTDATA = expectation and, when `evidence.event_log` is present, the RTMR3
 * replay and compose-hash pin (`evidence.app_compose` must hash to the compose-hash event).
 */
export function tdxTeeVerifier(opts: {
  roots: readonly Certificate[];
  policy?: Omit<TdxPolicy, 'expectedReportData' | 'eventLog' | 'appCompose'>;
  /** Intel DCAP collateral for the quote's FMSPC, read at each verification (absent: TCB status unknown). */
  collateral?: TdxCollateralSource | undefined;
}): TeeVerifier {
  return async ({ teeType, evidence, expectedReportData, at }) => {
    if (teeType !== 'tdx') throw new VerificationError('ERR_ACI_TEE_UNSUPPORTED', `expected attestation.tee_type "tdx" for this verifier, got ${JSON.stringify(teeType)}`);
    const quoteHex = evidence.quote;
    if (typeof quoteHex !== 'string') throw new MalformedError('ERR_ACI_REPORT_MALFORMED', 'expected attestation.evidence.quote to be a hex TDX quote');
    const parsed = parseTdxQuote(fromHex(quoteHex, { field: 'attestation.evidence.quote', code: 'ERR_ACI_REPORT_MALFORMED', allow0x: true }));
    const fmspc = quoteFmspc(parsed.pckChainPem);
    await opts.collateral?.prepare?.(fmspc);
    const collateral = opts.collateral?.(fmspc);
    const quote = verifyTdxQuote(parsed, {
      at,
      roots: opts.roots,
      ...(collateral ? { collateral } : {}),
    });
    const eventLog = evidence.event_log === undefined ? undefined : parseDstackEventLog(evidence.event_log);
    const appCompose = typeof evidence.app_compose === 'string' ? evidence.app_compose : undefined;
    const report = evaluateTdxPolicy(quote, {
      ...opts.policy,
      expectedReportData,
      ...(eventLog ? { eventLog } : {}),
      ...(appCompose !== undefined ? { appCompose } : {}),
    });
    return { reportData: quote.body.reportData, summary: { tee_type: 'tdx', mrtd: report.mrtd, rtmr: report.rtmr, tcb_status: report.tcbStatus, ...(report.advisoryIds ? { advisory_ids: report.advisoryIds } : {}), ...(report.composeHash ? { compose_hash: report.composeHash } : {}), report_data: toHex(quote.body.reportData) } };
  };
}
