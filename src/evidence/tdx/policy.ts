import { ViolationCollector } from '../../errors/index.js';
import type { Verified } from '../../types.js';
import { bytesEqual, sha256, toHex } from '../../util/bytes.js';
import type { TcbStatus } from './collateral.js';
import { TD_ATTRIBUTES_DEBUG_BIT, TD_ATTRIBUTES_RESERVED_MASK, TD_ATTRIBUTES_SEPT_VE_DISABLE } from './constants.js';
import { eventDigest, replayRtmr, type DstackEvent } from './eventlog.js';
import type { VerifiedTdxQuote } from './verify.js';

/** One allowed set of TD measurements (lowercase hex, 48 bytes each); absent members are not constrained. */
export interface TdxMeasurements {
  mrtd?: string;
  rtmr0?: string;
  rtmr1?: string;
  rtmr2?: string;
}

export interface TdxPolicy {
  /** Accept TDs with TDATTRIBUTES.DEBUG set. Never in production: the host can read TD memory. */
  allowDebug?: boolean;
  /** Accept TDs without TDATTRIBUTES.SEPT_VE_DISABLE (the host can then inject #VE through EPT). Default false. */
  allowSeptVe?: boolean;
  /** TCB statuses accepted when collateral was evaluated. Default `UpToDate` only; `Revoked` never. */
  allowedTcbStatuses?: readonly TcbStatus[];
  /** Minimum `tcbEvaluationDataNumber` of the collateral (TCB info and QE identity). Default 0. */
  minTcbEvaluationDataNumber?: number;
  /** Advisory ids (INTEL-SA-…) that refuse the platform whatever its status. */
  blockedAdvisories?: readonly string[];
  /** Alternative allowed measurement sets; empty or absent means no allowlist (only with a binding). */
  allowedMeasurements?: readonly TdxMeasurements[];
  /** REPORTDATA must equal these 64 bytes (the protocol's binding, e.g. ACI `report_data ‖ 0^32`). */
  expectedReportData?: Uint8Array;
  /** dstack event log: RTMR3 is replayed from it and must equal the quote's RTMR3. */
  eventLog?: readonly DstackEvent[];
  /** Raw `app_compose` text: SHA-256 must equal the `compose-hash` event payload. */
  appCompose?: string;
  /** Allowed compose hashes (hex SHA-256 of app_compose). Requires `eventLog`. */
  allowedComposeHashes?: readonly string[];
}

export interface TdxPolicyReport {
  /** From Intel's collateral, or `unknown` when none was given. */
  tcbStatus: TcbStatus | 'unknown';
  /** Advisory ids of the matched TCB levels (only with collateral). */
  advisoryIds?: string[];
  tcbEvaluationDataNumber?: number;
  mrtd: string;
  rtmr: [string, string, string, string];
  /** Present when an event log was replayed successfully. */
  composeHash?: string;
}

const has = (list: readonly string[], hex: string) => list.some((x) => x.toLowerCase() === hex);

/** Policy over a verified quote. Collects every violation, then throws one PolicyError. */
export function evaluateTdxPolicy(quote: Verified<VerifiedTdxQuote>, policy: TdxPolicy): TdxPolicyReport {
  const v = new ViolationCollector();
  const b = quote.body;
  const mrtd = toHex(b.mrTd);
  const rtmr: [string, string, string, string] = [toHex(b.rtmr0), toHex(b.rtmr1), toHex(b.rtmr2), toHex(b.rtmr3)];
  if (((b.tdAttributes[0] as number) & TD_ATTRIBUTES_DEBUG_BIT) !== 0 && !policy.allowDebug) {
    v.add('ERR_POLICY_TDX_DEBUG', `expected TDATTRIBUTES.DEBUG clear, got TDATTRIBUTES ${toHex(b.tdAttributes)}: a debug TD, whose memory the host can read`);
  }
  checkTdAttributes(quote, policy, v);
  checkTcb(quote, policy, v);
  if (policy.allowedMeasurements && policy.allowedMeasurements.length > 0) {
    const actual: Required<TdxMeasurements> = { mrtd, rtmr0: rtmr[0], rtmr1: rtmr[1], rtmr2: rtmr[2] };
    const ok = policy.allowedMeasurements.some((set) =>
      (Object.keys(actual) as (keyof TdxMeasurements)[]).every((k) => set[k] === undefined || set[k].toLowerCase() === actual[k]),
    );
    if (!ok) v.add('ERR_POLICY_TDX_MEASUREMENT', `expected MRTD/RTMR0-2 to match an allowed set, got MRTD ${mrtd}`, { mrtd, rtmr0: rtmr[0], rtmr1: rtmr[1], rtmr2: rtmr[2] });
  }
  if (policy.expectedReportData && !bytesEqual(b.reportData, policy.expectedReportData)) {
    v.add('ERR_POLICY_TDX_REPORT_DATA', `expected REPORTDATA ${toHex(policy.expectedReportData)}, got ${toHex(b.reportData)}`);
  }
  let composeHash: string | undefined;
  if (policy.eventLog) {
    const replayed = replayRtmr(policy.eventLog, 3);
    if (!bytesEqual(replayed, b.rtmr3)) {
      v.add('ERR_POLICY_TDX_RTMR3_REPLAY', `expected the event log to replay to RTMR3 ${rtmr[3]}, got ${toHex(replayed)}`);
    } else {
      // Only events before "system-ready" were measured while the app could not yet extend RTMR3 itself.
      const ready = policy.eventLog.findIndex((e) => e.imr === 3 && e.event === 'system-ready');
      const before = ready < 0 ? policy.eventLog : policy.eventLog.slice(0, ready);
      const compose = before.filter((e) => e.imr === 3 && e.event === 'compose-hash');
      const runtimeDigestsOk = policy.eventLog.every((e) => e.imr !== 3 || e.digest.length === 0 || bytesEqual(e.digest, eventDigest(e)));
      if (!runtimeDigestsOk) v.add('ERR_POLICY_TDX_EVENT_DIGEST', 'expected every logged RTMR3 event digest to match its recomputed digest');
      if (compose.length !== 1 || policy.eventLog.filter((e) => e.imr === 3 && e.event === 'compose-hash').length !== 1) {
        v.add('ERR_POLICY_TDX_COMPOSE_EVENT', `expected exactly one compose-hash event before system-ready, got ${compose.length}`);
      } else {
        composeHash = toHex((compose[0] as DstackEvent).payload);
        if (policy.appCompose !== undefined) {
          const h = toHex(sha256(Buffer.from(policy.appCompose, 'utf8')));
          if (h !== composeHash) v.add('ERR_POLICY_TDX_APP_COMPOSE', `expected SHA-256(app_compose) ${composeHash} (the compose-hash event), got ${h}`);
        }
        if (policy.allowedComposeHashes && !has(policy.allowedComposeHashes, composeHash)) {
          v.add('ERR_POLICY_TDX_COMPOSE_HASH', `expected compose hash in the allowlist, got ${composeHash}`);
        }
      }
    }
  } else if (policy.allowedComposeHashes && policy.allowedComposeHashes.length > 0) {
    v.add('ERR_POLICY_TDX_COMPOSE_EVENT', 'a compose-hash pin is configured but no event log was given to replay RTMR3');
  }
  v.throwIfAny();
  const tcb = quote.tcb;
  return {
    tcbStatus: quote.tcbStatus,
    ...(tcb ? { advisoryIds: tcb.advisoryIds, tcbEvaluationDataNumber: tcb.tcbEvaluationDataNumber } : {}),
    mrtd,
    rtmr,
    ...(composeHash ? { composeHash } : {}),
  };
}

/** TDATTRIBUTES as a little-endian u64. */
const attributes = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);

/** Reserved TDATTRIBUTES bits zero, SEPT_VE_DISABLE set (unless allowed), MRSERVICETD zero (no service TD is trusted). */
function checkTdAttributes(quote: Verified<VerifiedTdxQuote>, policy: TdxPolicy, v: ViolationCollector): void {
  const b = quote.body;
  const attrs = attributes(b.tdAttributes);
  if ((attrs & TD_ATTRIBUTES_RESERVED_MASK) !== 0n) {
    v.add('ERR_POLICY_TDX_ATTRIBUTES', `expected the reserved TDATTRIBUTES bits zero, got TDATTRIBUTES ${toHex(b.tdAttributes)} (reserved bits 0x${(attrs & TD_ATTRIBUTES_RESERVED_MASK).toString(16)})`);
  }
  if ((attrs & TD_ATTRIBUTES_SEPT_VE_DISABLE) === 0n && !policy.allowSeptVe) {
    v.add('ERR_POLICY_TDX_SEPT_VE', `expected TDATTRIBUTES.SEPT_VE_DISABLE (bit 28) set, got TDATTRIBUTES ${toHex(b.tdAttributes)}: the host could inject #VE through EPT violations`);
  }
  if (b.mrServiceTd && !b.mrServiceTd.every((x) => x === 0)) {
    v.add('ERR_POLICY_TDX_MRSERVICETD', `expected MRSERVICETD zero (no service TD is trusted), got ${toHex(b.mrServiceTd)}`);
  }
}

/** Status allowlist, minimum evaluation data number and advisory blocklist (only when collateral was evaluated). */
function checkTcb(quote: Verified<VerifiedTdxQuote>, policy: TdxPolicy, v: ViolationCollector): void {
  const tcb = quote.tcb;
  if (!tcb) return;
  const allowed: readonly TcbStatus[] = (policy.allowedTcbStatuses ?? ['UpToDate']).filter((s) => s !== 'Revoked');
  if (!allowed.includes(tcb.status)) {
    v.add('ERR_POLICY_TDX_TCB_STATUS', `expected TCB status ${allowed.join(' or ')}, got ${tcb.status}${tcb.advisoryIds.length ? ` (advisories ${tcb.advisoryIds.join(', ')})` : ''}`, {
      tcbStatus: tcb.status,
      advisoryIds: tcb.advisoryIds,
    });
  }
  const min = policy.minTcbEvaluationDataNumber ?? 0;
  if (tcb.tcbEvaluationDataNumber < min) {
    v.add('ERR_POLICY_TDX_TCB_EVAL_NUMBER', `expected tcbEvaluationDataNumber >= ${min}, got ${tcb.tcbEvaluationDataNumber}`);
  }
  const blocked = tcb.advisoryIds.filter((a) => (policy.blockedAdvisories ?? []).some((x) => x.toUpperCase() === a.toUpperCase()));
  if (blocked.length > 0) v.add('ERR_POLICY_TDX_ADVISORY', `expected none of the blocked advisories, got ${blocked.join(', ')}`, { advisoryIds: blocked });
}
