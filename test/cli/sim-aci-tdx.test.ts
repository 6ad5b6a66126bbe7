import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { processScratch, serveOneUpstream, spawnBin, waitFor } from '../helpers/spawn.js';

const scratch = processScratch('tresor-sim-tdx-');

/** `serve` with one `aci` upstream (extra YAML lines) in front of the simulator, then one chat completion through it. */
const serveAci = (name: string, url: string, section: string[]) =>
  serveOneUpstream({ dir: scratch.dir, name, stateDir: join(scratch.dir, name, 'state'), url, profile: 'aci', caFile: join(scratch.dir, 'sim-ca.pem'), section, apiKey: `tr-${'6'.repeat(96)}`, running: scratch.running });

describe('tresor-attest sim --profile aci --aci-tee tdx with the daemon as real processes', () => {
  test('prints MRTD, RTMR0-2 and the compose hash, writes intel-root.pem; serve pinned to them attests, forwards and verifies the receipt; without the test root it refuses', async () => {
    const s = spawnBin('tresor-attest', ['sim', '--port', '0', '--write-dir', scratch.dir, '--profile', 'aci', '--aci-tee', 'tdx']);
    scratch.running.push(s);
    await waitFor(s, (o) => o.includes('wrote '), 20_000);
    const out = s.stdout();
    const url = /listening on (https:\/\/\S+)/.exec(out)?.[1] as string;
    const mrtd = /profile:\s+aci \(TDX MRTD ([0-9a-f]{96}); test Intel root in intel-root\.pem\)/.exec(out)?.[1] as string;
    const rtmrs = /tdx RTMR0-2:\s+([0-9a-f]{96}) ([0-9a-f]{96}) ([0-9a-f]{96})$/m.exec(out)?.slice(1) as string[];
    const compose = /tdx compose hash:\s+([0-9a-f]{64})$/m.exec(out)?.[1] as string;
    expect(mrtd).toMatch(/^[0-9a-f]{96}$/);
    expect(rtmrs).toHaveLength(3);
    expect(compose).toMatch(/^[0-9a-f]{64}$/);
    expect(out).toMatch(/wrote sim-ca\.pem, release-root\.pub, test-roots\.pem, intel-root\.pem to /);

    const { res, verdict } = await serveAci('pinned', url, [
      'aci:',
      `  allowed_measurements: [${mrtd}]`,
      'attestation:',
      `  test_roots_file: ${join(scratch.dir, 'test-roots.pem')}`,
      'tdx:',
      `  allowed_rtmrs: [{rtmr0: ${rtmrs[0]}, rtmr1: ${rtmrs[1]}, rtmr2: ${rtmrs[2]}}]`,
      `  allowed_compose_hashes: [${compose}]`,
    ]);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(res.headers['x-tresor-attestation-kind']).toBe('tdx');
    expect(res.headers['x-tresor-measurement']).toBe(mrtd);
    await res.body.text();
    expect((await verdict()).verdict).toBe('verified');

    const refused = await serveAci('pinned-intel-root', url, ['aci:', `  allowed_measurements: [${mrtd}]`]);
    expect(refused.res.statusCode).toBe(502);
    expect(await refused.res.body.json()).toMatchObject({ error: { type: 'attestation_error', code: 'ERR_CHAIN_UNTRUSTED' } });
  }, 60_000);

  test('--aci-tee needs --profile aci; only sev_snp and tdx', async () => {
    const runs = [['--aci-tee', 'tdx'], ['--profile', 'aci', '--aci-tee', 'sgx']].map((args) => spawnBin('tresor-attest', ['sim', '--port', '0', ...args]));
    for (const p of runs) {
      expect(await p.exited).toBe(2);
      expect(p.stderr()).toMatch(/^error: /);
    }
  }, 60_000);
});
