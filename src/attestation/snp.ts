import type { UpstreamConfig } from '../config/types.js';
import type { SnpKnobs } from '../evidence/snp/index.js';
import { parseCrl, type Crl } from '../x509/crl.js';
import { watchedFile } from './watched-file.js';

/** A parsed CRL with the exact bytes it was parsed from (what a pin archives). */
export type CrlWithDer = Crl & { readonly der: Uint8Array };

/** AMD's CRL (DER, as KDS serves it at /vcek/v1/{product}/crl) from `snp.crl_file`, re-read when it changes; undefined when not configured. */
export function snpCrlSource(u: UpstreamConfig): (() => CrlWithDer) | undefined {
  const file = u.snp.crl_file;
  if (!file) return undefined;
  return watchedFile(file, `upstreams.${u.name}.snp.crl_file`, 'ERR_SNP_CRL_UNAVAILABLE', (data) => ({ ...parseCrl(new Uint8Array(data), 'snp.crl_file', 'ERR_SNP_CRL_MALFORMED'), der: new Uint8Array(data) }));
}

/** The SEV-SNP guest and platform policy an upstream's `snp` section asks for (debug comes from `attestation.allow_debug`; a trust bundle's `snp` can tighten it). */
export function snpPolicy(u: UpstreamConfig): SnpKnobs {
  return {
    allowMigrateMa: u.snp.allow_migrate_ma,
    allowSmt: u.snp.allow_smt,
    requireTsme: u.snp.require_tsme,
    allowProvisionalFirmware: u.snp.allow_provisional_firmware,
    ...(u.snp.min_launch_tcb !== null ? { minLaunchTcb: u.snp.min_launch_tcb } : {}),
    ...(u.snp.min_tcb !== null ? { minTcb: u.snp.min_tcb } : {}),
  };
}
