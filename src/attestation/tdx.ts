import type { UpstreamConfig } from '../config/types.js';
import { FetchError } from '../errors/index.js';
import { watchedFile } from './watched-file.js';
import { join } from 'node:path';
import { loadIntelSgxRoots, parseTdxCollateral, type TdxCollateral, type TdxCollateralSource, type TdxPolicy } from '../evidence/tdx/index.js';
import type { Certificate } from '../x509/certificate.js';
import { withTestRoots, type TestRoots } from './test-roots.js';

/** Intel roots for an upstream's TDX evidence: the pinned Intel SGX Root CA, plus the operator's test roots if any. */
export function tdxRoots(testRoots: TestRoots): Certificate[] {
  return withTestRoots(loadIntelSgxRoots(), testRoots);
}

/**
 * The TDX policy an upstream's configuration asks for (MRTD is allowlisted by the profile's
 * `allowed_measurements`): RTMR0-2 sets, the compose-hash pin (which makes the event log
 * mandatory), and the debug bit.
 */
export function tdxPolicy(u: UpstreamConfig): Omit<TdxPolicy, 'expectedReportData' | 'eventLog' | 'appCompose'> {
  return {
    allowDebug: u.attestation.allow_debug,
    ...(u.tdx.allowed_rtmrs.length > 0 ? { allowedMeasurements: u.tdx.allowed_rtmrs.map((s) => ({ ...s })) } : {}),
    ...(u.tdx.allowed_compose_hashes.length > 0 ? { allowedComposeHashes: u.tdx.allowed_compose_hashes } : {}),
    allowSeptVe: u.tdx.allow_sept_ve,
    allowedTcbStatuses: u.tdx.allowed_tcb_statuses,
    minTcbEvaluationDataNumber: u.tdx.min_tcb_evaluation_data_number,
    blockedAdvisories: u.tdx.blocked_advisories,
  };
}

/**
 * Intel DCAP collateral (`QuoteCollateralV3` JSON) from `tdx.collateral_file` (one platform), or
 * from `tdx.collateral_dir` (a cache of `<fmspc>.json` files, lowercase FMSPC, e.g. filled from a
 * PCCS): the file for the quote's FMSPC. Files are re-read when they change, so a refresh before
 * nextUpdate is picked up without a restart. Undefined when neither is configured; a missing or
 * unreadable file fails the attestation (ERR_TDX_COLLATERAL_UNAVAILABLE), a malformed one is a
 * parse error, a stale one fails verification with ERR_TDX_COLLATERAL_STALE.
 */
export function tdxCollateralSource(u: UpstreamConfig): TdxCollateralSource | undefined {
  const { collateral_file: file, collateral_dir: dir } = u.tdx;
  if (file) {
    const read = fileCollateral(file, `upstreams.${u.name}.tdx.collateral_file`);
    return () => read();
  }
  if (!dir) return undefined;
  const readers = new Map<string, () => TdxCollateral>();
  return (fmspc) => {
    if (!/^[0-9a-f]{12}$/.test(fmspc)) throw new FetchError('ERR_TDX_COLLATERAL_UNAVAILABLE', `expected a 12-hex-digit FMSPC, got ${JSON.stringify(fmspc)}`);
    let read = readers.get(fmspc);
    if (!read) {
      read = fileCollateral(join(dir, `${fmspc}.json`), `upstreams.${u.name}.tdx.collateral_dir (FMSPC ${fmspc})`);
      if (readers.size >= 256) readers.clear();
      readers.set(fmspc, read);
    }
    return read();
  };
}

export function fileCollateral(file: string, key: string): () => TdxCollateral {
  return watchedFile(file, key, 'ERR_TDX_COLLATERAL_UNAVAILABLE', (data) => parseTdxCollateral(data.toString('utf8')));
}
