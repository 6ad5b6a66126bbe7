import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { createSnpTestPki, mintSnpReport } from '../../src/sim/mint/snp.js';
import { toPem } from '../../src/x509/certificate.js';
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

  test('a real Turin v5 report (project-oak/oak) with its KDS VCEK: PASS, Turin TCB layout with FMC, TSME requirable', async () => {
    const p = spawnBin('tresor-verify', ['snp', vectorPath('snp-oak-turin-v5-attestation.bin'), '--vcek', vectorPath('snp-oak-turin-vcek.der'), '--at', '2026-06-01T00:00:00Z', '--require-tsme', '--min-tcb', 'bl=1,tee=0,snp=2,ucode=71,fmc=0', '--json']);
    expect(await p.exited).toBe(0);
    expect(JSON.parse(p.stdout())).toMatchObject({ ok: true, version: 5, product: 'turin', reported_tcb: '0001000200000047', reported_tcb_decoded: { fmc: 0, bootloader: 1, tee: 0, snp: 2, microcode: 71 }, cpuid: { family: 0x1a, model: 2, stepping: 1 } });
    const g = spawnBin('tresor-verify', ['snp', vectorPath('snp-routex-genoa-v5-attestation.bin'), '--vcek', vectorPath('snp-routex-genoa-v5-vcek-chain.pem'), '--at', '2026-06-01T00:00:00Z', '--require-tsme', '--json']);
    expect(await g.exited).toBe(5);
    expect(JSON.parse(g.stdout())).toMatchObject({ ok: false, version: 5, error: { code: 'ERR_POLICY_SNP_TSME' } });
  });

  test('--chain supplies intermediates only: a VLEK report verifies through the ASVK; a self-made ASK/ARK is not trusted', async () => {
    // The trustee file is ASK, ARK, ASVK as AMD KDS serves them: the path VLEK → ASVK → pinned ARK-Milan is found in it.
    const vlek = spawnBin('tresor-verify', ['snp', vectorPath('snp-trustee-milan-vlek-attestation.bin'), '--vcek', vectorPath('snp-trustee-milan-vlek.der'), '--chain', vectorPath('snp-trustee-milan-ask-ark-asvk.pem'), '--at', '2025-06-01T00:00:00Z', '--allow-provisional-firmware', '--json']);
    expect(await vlek.exited).toBe(5);
    expect(JSON.parse(vlek.stdout())).toMatchObject({ ok: false, signing_key: 'vlek', vmpl: 1, error: { code: 'ERR_POLICY_VMPL' } });
    // A report signed by a software PKI whose ASK and ARK come along in --chain: the ARK is not AMD's.
    const pki = await createSnpTestPki();
    const dir = await mkdtemp(join(tmpdir(), 'tresor-snp-chain-'));
    try {
      await writeFile(join(dir, 'report.bin'), mintSnpReport(pki, { measurement: new Uint8Array(48), reportData: new Uint8Array(64) }));
      await writeFile(join(dir, 'vcek.pem'), toPem(pki.vcek));
      await writeFile(join(dir, 'chain.pem'), `${toPem(pki.ask)}${toPem(pki.ark)}`);
      const forged = spawnBin('tresor-verify', ['snp', join(dir, 'report.bin'), '--vcek', join(dir, 'vcek.pem'), '--chain', join(dir, 'chain.pem'), '--json']);
      expect(await forged.exited).toBe(4);
      expect(JSON.parse(forged.stdout())).toMatchObject({ ok: false, error: { code: 'ERR_CHAIN_UNTRUSTED' } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
