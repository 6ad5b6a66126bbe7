import type { UpstreamConfig } from '../config/types.js';
import { loadIntelSgxRoots, type TdxPolicy } from '../evidence/tdx/index.js';
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
  };
}
