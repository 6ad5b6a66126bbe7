import { describe, expect, test } from 'vitest';
import { snpPolicy } from '../../src/attestation/snp.js';
import { resolveConfig } from '../../src/config/load.js';
import type { UpstreamConfig } from '../../src/config/types.js';

const upstream = (snp: Record<string, unknown>) => resolveConfig({ upstreams: [{ attestation: { mode: 'off' }, snp }] }, null).upstreams[0] as UpstreamConfig;

describe("an upstream's snp: section as SEV-SNP policy", () => {
  test('defaults: MIGRATE_MA and provisional firmware refused, SMT allowed, no TSME requirement, no TCB floors', () => {
    expect(snpPolicy(upstream({}))).toEqual({ allowMigrateMa: false, allowSmt: true, requireTsme: false, allowProvisionalFirmware: false });
  });
  test('min_tcb and min_launch_tcb become the REPORTED_TCB and LAUNCH_TCB floors', () => {
    expect(snpPolicy(upstream({ min_tcb: 'bl=3,tee=0,snp=8,ucode=115', min_launch_tcb: '0300000000000873' }))).toMatchObject({ minTcb: 'bl=3,tee=0,snp=8,ucode=115', minLaunchTcb: '0300000000000873' });
  });
});
