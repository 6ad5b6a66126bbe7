import type { UpstreamConfig } from '../config/types.js';
import { describeCause, FetchError } from '../errors/index.js';
import { watchedFile } from './watched-file.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { Clock } from '../types.js';
import { boundedFetcher } from '../util/fetch.js';
import { MAX_COLLATERAL_BYTES } from '../evidence/tdx/collateral.js';
import { pccsCollateralSource } from './tdx-pccs.js';
import { loadIntelSgxRoots, parseTdxCollateral, parseTdxQuote, quoteFmspc, type TdxCollateral, type TdxCollateralSource, type TdxPolicy } from '../evidence/tdx/index.js';
import type { Certificate } from '../x509/certificate.js';
import { withTestRoots, type TestRoots } from './test-roots.js';
import { withCollateralBytes } from './tdx-collateral-log.js';

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

/** Where an upstream's Intel collateral comes from (recorded in its pins' policy), or null: TCB status unknown. */
export function tdxCollateralKind(u: UpstreamConfig): 'pccs' | 'file' | 'dir' | null {
  return u.tdx.pccs_url ? 'pccs' : u.tdx.collateral_file ? 'file' : u.tdx.collateral_dir ? 'dir' : null;
}

/** What a PCCS collateral source needs beyond the upstream's config. */
export interface TdxCollateralDeps {
  stateDir: string;
  clock: Clock;
  logger?: Logger | undefined;
}

/**
 * Intel DCAP collateral (`QuoteCollateralV3` JSON) from `tdx.collateral_file` (one platform), or
 * from `tdx.collateral_dir` (a cache of `<fmspc>.json` files, lowercase FMSPC, e.g. filled from a
 * PCCS): the file for the quote's FMSPC. Files are re-read when they change, so a refresh before
 * nextUpdate is picked up without a restart. Or from `tdx.pccs_url` (Intel PCS API v4), cached in
 * `<state_dir>/tdx-collateral/<upstream>/` and refreshed before nextUpdate (`pccsCollateralSource`).
 * Undefined when none is configured; a missing or unreadable file fails the attestation
 * (ERR_TDX_COLLATERAL_UNAVAILABLE), a failed fetch with nothing cached ERR_TDX_COLLATERAL_FETCH, a
 * malformed one is a parse error, a stale one fails verification with ERR_TDX_COLLATERAL_STALE.
 */
export function tdxCollateralSource(u: UpstreamConfig, deps: TdxCollateralDeps): TdxCollateralSource | undefined {
  const { collateral_file: file, collateral_dir: dir } = u.tdx;
  if (u.tdx.pccs_url) return pccsSource(u, u.tdx.pccs_url, deps);
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
  return watchedFile(file, key, 'ERR_TDX_COLLATERAL_UNAVAILABLE', (data) => withCollateralBytes(parseTdxCollateral(data.toString('utf8')), new Uint8Array(data)));
}

/** Each PCS answer is bounded like a collateral file, each request by 10 s. */
const PCCS_TIMEOUT_MS = 10_000;

function pccsSource(u: UpstreamConfig, url: string, deps: TdxCollateralDeps): TdxCollateralSource {
  const key = `upstreams.${u.name}.tdx.pccs_ca_file`;
  let ca: string | undefined;
  if (u.tdx.pccs_ca_file) {
    try {
      ca = readFileSync(u.tdx.pccs_ca_file, 'utf8');
    } catch (e) {
      throw new FetchError('ERR_TDX_COLLATERAL_UNAVAILABLE', `${key}: cannot read ${u.tdx.pccs_ca_file}: ${describeCause(e, { code: true })}`);
    }
  }
  return pccsCollateralSource({
    url,
    fetcher: boundedFetcher({ maxBytes: MAX_COLLATERAL_BYTES, timeoutMs: PCCS_TIMEOUT_MS, ca }),
    cacheDir: join(deps.stateDir, 'tdx-collateral', u.name),
    clock: deps.clock,
    refreshMs: u.tdx.pccs_refresh_seconds * 1000,
    onFetchError: (fmspc, error, cachedInUse) =>
      deps.logger?.warn({ upstream: u.name, fmspc, code: (error as FetchError).code, cached_in_use: cachedInUse }, `TDX collateral fetch from ${url} failed: ${error.message}`),
  });
}

/**
 * Before a synchronous verification of `quotes`: a fetching source (PCCS) gets the collateral of
 * each quote's platform ready, once per FMSPC. A quote that does not parse is left to the
 * verifier, which refuses it with its own error.
 */
export async function prepareCollateral(source: TdxCollateralSource | undefined, quotes: readonly Uint8Array[]): Promise<void> {
  if (!source?.prepare) return;
  const fmspcs = new Set<string>();
  for (const q of quotes) {
    try {
      fmspcs.add(quoteFmspc(parseTdxQuote(q).pckChainPem));
    } catch {
      // refused by the verifier
    }
  }
  for (const f of fmspcs) await source.prepare(f);
}
