import { describe, expect, test } from 'vitest';
import { spawnBin } from '../helpers/spawn.js';
import { vectorPath } from '../helpers/vectors.js';

const report = vectorPath('snp-go-sev-guest-milan-attestation.bin');
const vcekPem = vectorPath('snp-go-sev-guest-milan-vcek.pem');
const vcekDer = vectorPath('snp-go-sev-guest-milan-vcek.der');
const M = 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01';

describe('tresor-verify snp', () => {
  test('PASS with --allow-debug, the measurement and min TCB; --json fields', async () => {
    const p = spawnBin('tresor-verify', ['snp', report, '--vcek', vcekPem, '--at', '2022-09-24T01:00:00Z', '--allow-debug', '--measurement', M, '--min-tcb', 'bl=2,tee=0,snp=5,ucode=68']);
    expect(await p.exited).toBe(0);
    expect(p.stdout()).toContain(`SNP MEASUREMENT:  ${M}`);
    expect(p.stdout()).toContain('REPORTED_TCB:     0200000000000544 (bl=2,tee=0,snp=5,ucode=68)');
    const j = spawnBin('tresor-verify', ['snp', report, '--vcek', vcekDer, '--product', 'milan', '--allow-debug', '--json']);
    expect(await j.exited).toBe(0);
    expect(JSON.parse(j.stdout())).toMatchObject({ ok: true, measurement: M, debug: true, vmpl: 0, product: 'milan' });
  });

  test('exit 5 for the debug policy and a wrong measurement, 4 for wrong roots, 3 for garbage', async () => {
    const d = spawnBin('tresor-verify', ['snp', report, '--vcek', vcekPem, '--json']);
    expect(await d.exited).toBe(5);
    expect(JSON.parse(d.stdout())).toMatchObject({ ok: false, measurement: M, error: { code: 'ERR_POLICY_DEBUG' } });
    const m = spawnBin('tresor-verify', ['snp', report, '--vcek', vcekPem, '--allow-debug', '--measurement', '00'.repeat(48)]);
    expect(await m.exited).toBe(5);
    const genoa = spawnBin('tresor-verify', ['snp', report, '--vcek', vcekPem, '--chain', new URL('../../certs/amd-ask-ark-genoa.pem', import.meta.url).pathname]);
    expect(await genoa.exited).toBe(4);
    const junk = spawnBin('tresor-verify', ['snp', vcekPem, '--vcek', vcekPem]);
    expect(await junk.exited).toBe(3);
  });

  test('guest and platform policy flags on the real report: SMT refusable, TSME requirable, launch TCB floor', async () => {
    const base = ['snp', report, '--vcek', vcekPem, '--at', '2022-09-24T01:00:00Z', '--allow-debug'];
    const ok = spawnBin('tresor-verify', [...base, '--min-launch-tcb', 'bl=2,tee=0,snp=5,ucode=68']);
    expect(await ok.exited).toBe(0);
    expect(ok.stdout()).toMatch(/PLATFORM_INFO:\s+SMT enabled, TSME off/);
    for (const [flags, code] of [
      [['--no-allow-smt'], 'ERR_POLICY_SNP_SMT'],
      [['--require-tsme'], 'ERR_POLICY_SNP_TSME'],
      [['--min-launch-tcb', 'bl=2,tee=0,snp=6,ucode=68'], 'ERR_POLICY_SNP_LAUNCH_TCB'],
    ] as const) {
      const p = spawnBin('tresor-verify', [...base, ...flags]);
      expect(await p.exited).toBe(5);
      expect(p.stdout()).toMatch(new RegExp(`^FAIL ${code}: `));
    }
  });
});
