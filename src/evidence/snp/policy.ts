import { ViolationCollector } from '../../errors/index.js';
import type { Verified } from '../../types.js';
import { bytesEqual, toHex } from '../../util/bytes.js';
import { formatTcb, type TcbVersion } from './abi.js';
import type { VerifiedSnp } from './verify.js';

export interface SnpPolicy {
  /** Allowed MEASUREMENTs (96 lowercase hex); empty or absent: not checked. */
  measurements?: readonly string[];
  /** Full 64-byte REPORT_DATA, or its halves [0:32] / [32:64]. */
  reportData?: Uint8Array;
  reportDataPrefix?: Uint8Array;
  reportDataSuffix?: Uint8Array;
  /** REPORTED_TCB must be >= this, component by component. */
  minTcb?: TcbVersion;
  /** Accept POLICY.DEBUG (bit 19). Never in production. */
  allowDebug?: boolean;
  /** Expected VMPL (default 0). */
  vmpl?: number | null;
  hostData?: Uint8Array;
  idKeyDigest?: Uint8Array;
}

/** Policy over a verified report only; every violation is collected (go-sev-guest validate). */
export function evaluateSnpPolicy(r: Verified<VerifiedSnp>, policy: SnpPolicy): void {
  const v = new ViolationCollector();
  if (r.policy.debug && !policy.allowDebug) v.add('ERR_POLICY_DEBUG', 'POLICY.DEBUG is set: the host can read and modify guest memory');
  if (policy.measurements && policy.measurements.length > 0 && !policy.measurements.includes(toHex(r.MEASUREMENT))) {
    v.add('ERR_POLICY_MEASUREMENT', `MEASUREMENT ${toHex(r.MEASUREMENT)} is not in the allowlist`, { measurement: toHex(r.MEASUREMENT) });
  }
  const rd = (want: Uint8Array | undefined, got: Uint8Array, what: string) => {
    if (want && !bytesEqual(want, got)) v.add('ERR_POLICY_REPORT_DATA', `expected ${what} ${toHex(want)}, got ${toHex(got)}`);
  };
  rd(policy.reportData, r.REPORT_DATA, 'REPORT_DATA');
  rd(policy.reportDataPrefix, r.REPORT_DATA.subarray(0, 32), 'REPORT_DATA[0:32]');
  rd(policy.reportDataSuffix, r.REPORT_DATA.subarray(32, 64), 'REPORT_DATA[32:64]');
  if (policy.minTcb) {
    const low = (['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const).filter((k) => policy.minTcb?.[k] !== undefined && (r.reportedTcb[k] ?? -1) < (policy.minTcb[k] as number));
    if (low.length > 0) v.add('ERR_POLICY_TCB', `REPORTED_TCB ${formatTcb(r.reportedTcb)} is below the floor ${formatTcb(policy.minTcb)} (${low.join(', ')})`);
  }
  const vmpl = policy.vmpl === undefined ? 0 : policy.vmpl;
  if (vmpl !== null && r.VMPL !== vmpl) v.add('ERR_POLICY_VMPL', `expected VMPL ${vmpl}, got ${r.VMPL}`);
  if (policy.hostData && !bytesEqual(policy.hostData, r.HOST_DATA)) v.add('ERR_POLICY_HOST_DATA', `expected HOST_DATA ${toHex(policy.hostData)}, got ${toHex(r.HOST_DATA)}`);
  if (policy.idKeyDigest && !bytesEqual(policy.idKeyDigest, r.ID_KEY_DIGEST)) v.add('ERR_POLICY_ID_KEY', 'ID_KEY_DIGEST differs from the expected one');
  v.throwIfAny();
}
