import { ViolationCollector } from '../../errors/index.js';
import type { Verified } from '../../types.js';
import { bytesEqual, toHex } from '../../util/bytes.js';
import { decodeTcb, formatTcb, parseTcbSpec, type Product, type TcbVersion } from './abi.js';
import type { VerifiedSnp } from './verify.js';

export interface SnpPolicy {
  /** Allowed MEASUREMENTs (96 lowercase hex); empty or absent: not checked. */
  measurements?: readonly string[];
  /** Full 64-byte REPORT_DATA, or its halves [0:32] / [32:64]. */
  reportData?: Uint8Array;
  reportDataPrefix?: Uint8Array;
  reportDataSuffix?: Uint8Array;
  /** REPORTED_TCB must be >= this, component by component (a spec string is read for the report's product). */
  minTcb?: TcbVersion | string;
  /** Accept POLICY.DEBUG (bit 19). Never in production. */
  allowDebug?: boolean;
  /** Expected VMPL (default 0). */
  vmpl?: number | null;
  hostData?: Uint8Array;
  idKeyDigest?: Uint8Array;
  /** Accept POLICY.MIGRATE_MA (a migration agent may move the guest). Default false. */
  allowMigrateMa?: boolean;
  /** Accept SMT (POLICY.SMT or PLATFORM_INFO.SMT_EN). Default true: the clouds run with SMT. */
  allowSmt?: boolean;
  /** Require PLATFORM_INFO.TSME_EN. Default false. */
  requireTsme?: boolean;
  /** Accept CURRENT_TCB/firmware differing from COMMITTED (provisional firmware, can be rolled back). Default false. */
  allowProvisionalFirmware?: boolean;
  /** LAUNCH_TCB must be >= this, component by component (a spec string is read for the report's product). */
  minLaunchTcb?: TcbVersion | string;
}

const TCB_KEYS = ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const;
/** Components of `tcb` below `floor` (a component the floor leaves out is not constrained). */
export const tcbBelow = (tcb: TcbVersion, floor: TcbVersion) => TCB_KEYS.filter((k) => floor[k] !== undefined && (tcb[k] ?? -1) < (floor[k] as number));
const resolveTcb = (t: TcbVersion | string, product: Product) => (typeof t === 'string' ? parseTcbSpec(t, product) : t);

/** The higher of two TCB floors, component by component (either may be absent). */
function higherFloor(a: TcbVersion | string | undefined, b: TcbVersion | string | undefined, product: Product): TcbVersion | undefined {
  if (a === undefined || b === undefined) return a === undefined ? (b === undefined ? undefined : resolveTcb(b, product)) : resolveTcb(a, product);
  const [x, y] = [resolveTcb(a, product), resolveTcb(b, product)];
  const pick = (k: (typeof TCB_KEYS)[number]) => (x[k] === undefined ? y[k] : y[k] === undefined ? x[k] : Math.max(x[k] as number, y[k] as number));
  return { bootloader: pick('bootloader') as number, tee: pick('tee') as number, snp: pick('snp') as number, microcode: pick('microcode') as number, ...(pick('fmc') !== undefined ? { fmc: pick('fmc') as number } : {}) };
}

/** The SEV-SNP knobs a signed trust bundle (`snp`) or the per-upstream config (`snp:`) can set. */
export type SnpKnobs = Pick<SnpPolicy, 'allowMigrateMa' | 'allowSmt' | 'requireTsme' | 'allowProvisionalFirmware' | 'minLaunchTcb' | 'minTcb'>;

/**
 * The stricter of two policies, knob by knob: an `allow*` holds only if neither says false (absent: no opinion,
 * and allowMigrateMa / allowProvisionalFirmware default to false), `requireTsme` if either says so, TCB floors
 * the higher per component. Neither side can loosen what the other demands (docs/wire.md §4a).
 */
export function stricterSnpPolicy<P extends SnpKnobs>(config: P, bundle: SnpKnobs, product: Product): P & SnpKnobs {
  const allow = (a: boolean | undefined, b: boolean | undefined, byDefault: boolean) => (a ?? byDefault) && (b ?? true);
  const minLaunchTcb = higherFloor(config.minLaunchTcb, bundle.minLaunchTcb, product);
  const minTcb = higherFloor(config.minTcb, bundle.minTcb, product);
  return {
    ...config,
    allowMigrateMa: allow(config.allowMigrateMa, bundle.allowMigrateMa, false),
    allowSmt: allow(config.allowSmt, bundle.allowSmt, true),
    requireTsme: Boolean(config.requireTsme || bundle.requireTsme),
    allowProvisionalFirmware: allow(config.allowProvisionalFirmware, bundle.allowProvisionalFirmware, false),
    ...(minLaunchTcb ? { minLaunchTcb } : {}),
    ...(minTcb ? { minTcb } : {}),
  };
}

/** Guest policy bits, PLATFORM_INFO flags, provisional firmware and the launch TCB (go-sev-guest validate). */
function checkPlatform(r: Verified<VerifiedSnp>, policy: SnpPolicy, v: ViolationCollector): void {
  if (r.policy.migrateMa && !policy.allowMigrateMa) v.add('ERR_POLICY_SNP_MIGRATE_MA', `expected POLICY.MIGRATE_MA (bit 18) clear, got POLICY 0x${r.POLICY.toString(16)}: a migration agent may move the guest`);
  if (policy.allowSmt === false && (r.policy.smt || r.platformInfo.smtEnabled)) {
    v.add('ERR_POLICY_SNP_SMT', `expected no SMT, got POLICY.SMT ${Number(r.policy.smt)} and PLATFORM_INFO.SMT_EN ${Number(r.platformInfo.smtEnabled)}`);
  }
  if (policy.requireTsme && !r.platformInfo.tsmeEnabled) v.add('ERR_POLICY_SNP_TSME', `expected PLATFORM_INFO.TSME_EN set, got PLATFORM_INFO 0x${r.PLATFORM_INFO.toString(16)}`);
  if (!policy.allowProvisionalFirmware && (!bytesEqual(r.CURRENT_TCB, r.COMMITTED_TCB) || r.firmware.current !== r.firmware.committed)) {
    v.add('ERR_POLICY_SNP_PROVISIONAL', `expected CURRENT_TCB ${toHex(r.CURRENT_TCB)} (firmware ${r.firmware.current}) to equal COMMITTED_TCB ${toHex(r.COMMITTED_TCB)} (firmware ${r.firmware.committed}): provisional firmware can be rolled back`);
  }
  if (policy.minLaunchTcb) {
    const launch = decodeTcb(r.LAUNCH_TCB, r.product);
    const floor = resolveTcb(policy.minLaunchTcb, r.product);
    const low = tcbBelow(launch, floor);
    if (low.length > 0) v.add('ERR_POLICY_SNP_LAUNCH_TCB', `LAUNCH_TCB ${formatTcb(launch)} is below the floor ${formatTcb(floor)} (${low.join(', ')})`);
  }
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
    const floor = resolveTcb(policy.minTcb, r.product);
    const low = tcbBelow(r.reportedTcb, floor);
    if (low.length > 0) v.add('ERR_POLICY_TCB', `REPORTED_TCB ${formatTcb(r.reportedTcb)} is below the floor ${formatTcb(floor)} (${low.join(', ')})`);
  }
  const vmpl = policy.vmpl === undefined ? 0 : policy.vmpl;
  if (vmpl !== null && r.VMPL !== vmpl) v.add('ERR_POLICY_VMPL', `expected VMPL ${vmpl}, got ${r.VMPL}`);
  if (policy.hostData && !bytesEqual(policy.hostData, r.HOST_DATA)) v.add('ERR_POLICY_HOST_DATA', `expected HOST_DATA ${toHex(policy.hostData)}, got ${toHex(r.HOST_DATA)}`);
  if (policy.idKeyDigest && !bytesEqual(policy.idKeyDigest, r.ID_KEY_DIGEST)) v.add('ERR_POLICY_ID_KEY', 'ID_KEY_DIGEST differs from the expected one');
  checkPlatform(r, policy, v);
  v.throwIfAny();
}
