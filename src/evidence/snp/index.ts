import type { Verified } from '../../types.js';
import { parseSnpReport } from './abi.js';
import { evaluateSnpPolicy, type SnpPolicy } from './policy.js';
import { verifySnpReport, type SnpVerifyOptions, type VerifiedSnp } from './verify.js';

export { parseSnpReport, decodeTcb, parseTcbSpec, formatTcb, type SnpReport, type TcbVersion, type Product } from './abi.js';
export { verifySnpReport, type VerifiedSnp, type SnpVerifyOptions } from './verify.js';
export { evaluateSnpPolicy, stricterSnpPolicy, type SnpPolicy, type SnpKnobs } from './policy.js';
export { loadAmdRoots, AMD_ROOT_PINS } from './roots.js';
export { readVcekExtensions } from './vcek.js';

/** parse → verify → policy in one call. */
export function verifySnpAttestation(bytes: Uint8Array, opts: SnpVerifyOptions & { policy: SnpPolicy }): Verified<VerifiedSnp> {
  const verified = verifySnpReport(parseSnpReport(bytes), opts);
  evaluateSnpPolicy(verified, opts.policy);
  return verified;
}
