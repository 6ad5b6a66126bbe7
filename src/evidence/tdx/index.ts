import type { Verified } from '../../types.js';
import type { Certificate } from '../../x509/certificate.js';
import type { TdxCollateral } from './collateral.js';
import { parseTdxQuote } from './parse.js';
import { evaluateTdxPolicy, type TdxPolicy, type TdxPolicyReport } from './policy.js';
import { verifyTdxQuote, type VerifiedTdxQuote } from './verify.js';

export { parseTdxQuote, type TdxQuote, type TdReportBody } from './parse.js';
export { verifyTdxQuote, verifyTdxCollateral, loadIntelSgxRoots, type VerifiedTdxQuote } from './verify.js';
export { parseTdxCollateral, TCB_STATUSES, type TcbStatus, type TdxCollateral } from './collateral.js';
export { quoteFmspc, type TcbEvaluation } from './tcb.js';

/**
 * Collateral for a platform, by the FMSPC (lowercase hex) of the quote's PCK certificate. A source
 * that fetches (a PCCS) has `prepare`, awaited before the (synchronous) verification.
 */
export type TdxCollateralSource = ((fmspc: string) => TdxCollateral) & { prepare?: (fmspc: string) => Promise<void> };
export { fetchPcsCollateral, collateralFromPcs, PCS_PATHS, PCS_HEADERS } from './pcs.js';
export { evaluateTdxPolicy, type TdxPolicy, type TdxPolicyReport, type TdxMeasurements } from './policy.js';
export { parseDstackEventLog, replayRtmr, eventDigest, type DstackEvent, DSTACK_RUNTIME_EVENT_TYPE } from './eventlog.js';

/** parse → verify → policy in one call. */
export function verifyTdxAttestation(
  bytes: Uint8Array,
  opts: { at: Date; roots: readonly Certificate[]; policy: TdxPolicy; collateral?: TdxCollateral },
): { quote: Verified<VerifiedTdxQuote>; report: TdxPolicyReport } {
  const quote = verifyTdxQuote(parseTdxQuote(bytes), opts);
  return { quote, report: evaluateTdxPolicy(quote, opts.policy) };
}
