import type { UpstreamConfig } from '../config/types.js';
import type { SnpPolicy } from '../evidence/snp/index.js';

/** The SEV-SNP guest and platform policy an upstream's `snp` section asks for (debug comes from `attestation.allow_debug`). */
export function snpPolicy(u: UpstreamConfig): Pick<SnpPolicy, 'allowMigrateMa' | 'allowSmt' | 'requireTsme' | 'allowProvisionalFirmware' | 'minLaunchTcb'> {
  return {
    allowMigrateMa: u.snp.allow_migrate_ma,
    allowSmt: u.snp.allow_smt,
    requireTsme: u.snp.require_tsme,
    allowProvisionalFirmware: u.snp.allow_provisional_firmware,
    ...(u.snp.min_launch_tcb !== null ? { minLaunchTcb: u.snp.min_launch_tcb } : {}),
  };
}
