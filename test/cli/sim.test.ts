import { join } from 'node:path';
import { Agent, request } from 'undici';
import { describe, expect, test } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { processScratch, serveOneUpstream, spawnBin, waitFor } from '../helpers/spawn.js';

const scratch = processScratch('tresor-sim-cli-');

/** `tresor-attest sim` as a real process; resolves once it has written its CA and release root. */
async function sim(name: string, ...args: string[]) {
  const out = join(scratch.dir, name);
  const p = spawnBin('tresor-attest', ['sim', '--port', '0', '--write-dir', out, ...args]);
  scratch.running.push(p);
  await waitFor(p, (o) => o.includes('wrote '), 20_000);
  const url = /listening on (https:\/\/\S+)/.exec(p.stdout())?.[1] as string;
  const bundleUrl = /trust bundle:\s+(\S+)/.exec(p.stdout())?.[1] as string;
  const measurement = /\((?:MEASUREMENT|PCR0) ([0-9a-f]{96})\)/.exec(p.stdout())?.[1] as string;
  return { p, url, bundleUrl, measurement, out };
}

describe('tresor-attest sim --evidence nitro', () => {
  test('tresor-verify attest passes against it and prints the Nitro PCR0; the document verifies offline only with the simulator root', async () => {
    const s = await sim('nitro', '--evidence', 'nitro');
    expect(s.p.stdout()).toContain('evidence:                 nitro (PCR0 ');
    const args = ['attest', '--url', s.url, '--release-root', join(s.out, 'release-root.pub'), '--ca', join(s.out, 'sim-ca.pem'), '--bundle', s.bundleUrl, '--test-roots', join(s.out, 'test-roots.pem')];
    // Without the simulator's test roots its bundle's Nitro root is refused (not the AWS root pinned in certs/).
    const pinnedOnly = spawnBin('tresor-verify', args.slice(0, -2));
    expect(await pinnedOnly.exited).toBe(4);
    expect(pinnedOnly.stdout()).toMatch(/^FAIL ERR_BUNDLE_NITRO_ROOT_NOT_PINNED: .*attestation\.test_roots_file/);
    const v = spawnBin('tresor-verify', args);
    const j = spawnBin('tresor-verify', [...args, '--json']);
    expect(await v.exited).toBe(0);
    const lines = v.stdout().split('\n');
    expect(lines[0]).toBe('PASS');
    expect(lines[2]).toBe(`Nitro PCR0:            ${s.measurement}`);
    expect(await j.exited).toBe(0);
    const json = JSON.parse(j.stdout()) as { ok: boolean; kind: string; measurement: string; pcrs: Record<string, string> };
    expect(json).toMatchObject({ ok: true, kind: 'nitro', measurement: s.measurement });
    expect(Object.keys(json.pcrs)).toHaveLength(16);

    // The raw document from GET /attestation: `tresor-verify nitro` trusts the AWS root by default.
    const agent = new Agent({ connect: { ca: readFileSync(join(s.out, 'sim-ca.pem'), 'utf8') } });
    const env = (await (await request(`${s.url}/attestation`, { dispatcher: agent })).body.json()) as { nitro_attestation_b64: string };
    await agent.close();
    const offline = (...extra: string[]) => {
      const n = spawnBin('tresor-verify', ['nitro', '-', `--pcr`, `0=${s.measurement}`, ...extra]);
      n.child.stdin?.end(env.nitro_attestation_b64);
      return n;
    };
    const [aws, own] = [offline(), offline('--root', join(s.out, 'nitro-root.pem'))];
    expect(await aws.exited).toBe(4);
    expect(aws.stdout()).toMatch(/^FAIL ERR_CHAIN_UNTRUSTED/);
    expect(await own.exited).toBe(0);
  }, 60_000);
});

describe('tresor-attest sim --attestation-fault, and a daemon without the test roots', () => {
  test.each([
    ['nitro', ['--attestation-fault', 'wrongMeasurement'], true, 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED'],
    ['snp', ['--attestation-fault', 'tagNotAllowed'], true, 'ERR_ATTEST_TAG_NOT_ALLOWED'],
    ['snp', [], false, 'ERR_BUNDLE_AMD_ARK_NOT_PINNED'],
    ['nitro', [], false, 'ERR_BUNDLE_NITRO_ROOT_NOT_PINNED'],
  ])('a daemon refuses a %s simulator started with %j (test roots allowed: %s): %s, and stays not ready', async (kind, flags, allowTestRoots, code) => {
    const s = await sim(`${kind}-${flags.join('') || 'plain'}-${allowTestRoots}`, '--evidence', kind, ...flags);
    if (flags.length) expect(s.p.stdout()).toContain(`attestation faults:       ${flags[1]}`);
    expect(s.p.stdout()).toContain(`test roots:               ${join(s.out, 'test-roots.pem')} (attestation.test_roots_file`);
    const d = spawnBin('tresor-attest', ['serve', '--upstream', s.url, '--ca-file', join(s.out, 'sim-ca.pem'), '--listen', '127.0.0.1:0', '--state-dir', join(s.out, 'state')], {
      TRESOR_API_KEY: `tr-${'2'.repeat(96)}`,
      TRESOR_ATTEST_RELEASE_ROOT_FILE: join(s.out, 'release-root.pub'),
      TRESOR_ATTEST_TRUST_BUNDLE: s.bundleUrl,
      ...(allowTestRoots ? { TRESOR_ATTEST_TEST_ROOTS_FILE: join(s.out, 'test-roots.pem') } : {}),
    });
    scratch.running.push(d);
    await waitFor(d, (o) => o.includes('serving OPENAI_BASE_URL='), 20_000);
    // Test roots are said loudly at start, and only when allowed.
    expect(d.stdout().includes('TEST ROOTS ARE TRUSTED')).toBe(allowTestRoots);
    const base = /serving OPENAI_BASE_URL=(http:\/\/[^"\s]+)/.exec(d.stdout())?.[1] as string;
    const res = await request(`${base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"eu/tresor/gpt-oss-120b","messages":[]}' });
    expect(res.statusCode).toBe(502);
    const body = (await res.body.json()) as { error: { type: string; code: string; message: string } };
    expect(body.error).toMatchObject({ type: 'attestation_error', code });
    if (!allowTestRoots) expect(body.error.message).toContain('attestation.test_roots_file');
    const ready = (await (await request(`${base.replace(/\/v1$/, '')}/readyz`)).body.json()) as { ready: boolean };
    expect(ready.ready).toBe(false);
  }, 60_000);

  test('usage errors: an unknown evidence kind or fault, an SNP-only fault with Nitro, a fault without evidence, an HTTP/2 window below 65,535', async () => {
    const runs = [['--evidence', 'tdx'], ['--http2-window-bytes', '1000'], ['--attestation-fault', 'nope'], ['--evidence', 'nitro', '--attestation-fault', 'lowTcb'], ['--no-evidence', '--attestation-fault', 'wrongMeasurement']].map((args) =>
      spawnBin('tresor-attest', ['sim', '--port', '0', ...args]),
    );
    for (const p of runs) {
      expect(await p.exited).toBe(2);
      expect(p.stderr()).toMatch(/^error: /);
    }
  }, 60_000);
});

/** `serve` with one upstream of `profile` in front of the simulator `s` (its CA and directory). */
const serveProfile = (s: { url: string; out: string }, profile: 'aci' | 'pinaivu', section: string[], keyDigit: string) =>
  serveOneUpstream({ dir: s.out, name: profile, stateDir: join(s.out, 'state'), url: s.url, profile, caFile: join(s.out, 'sim-ca.pem'), section, apiKey: `tr-${keyDigit.repeat(96)}`, running: scratch.running });

describe('tresor-attest sim --profile aci with the daemon as real processes', () => {
  test('serve with profile aci attests the simulator, forwards, and verifies the receipt', async () => {
    const s = await sim('aci', '--profile', 'aci');
    const m = /profile:\s+aci \(SEV-SNP MEASUREMENT ([0-9a-f]{96});/.exec(s.p.stdout())?.[1] as string;
    expect(m).toMatch(/^[0-9a-f]{96}$/);
    const { res, verdict } = await serveProfile(s, 'aci', ['aci:', `  allowed_measurements: [${m}]`, 'attestation:', `  test_roots_file: ${join(s.out, 'test-roots.pem')}`], '3');
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound; test roots');
    await res.body.text();
    expect((await verdict()).verdict).toBe('verified');
  }, 60_000);
});

describe('tresor-attest sim --profile pinaivu with the daemon as real processes', () => {
  test('serve with profile pinaivu attests the coordinator, verifies the proof, and tresor-verify pinaivu re-checks the archive offline', async () => {
    const s = await sim('pinaivu', '--profile', 'pinaivu');
    const m = /profile:\s+pinaivu \(coordinator PCR0 ([0-9a-f]{96}); key ([0-9a-f]{64});/.exec(s.p.stdout());
    const [pcr0, key] = [m?.[1] as string, m?.[2] as string];
    expect(pcr0).toMatch(/^[0-9a-f]{96}$/);
    const { readdir, writeFile } = await import('node:fs/promises');
    const section = ['pinaivu:', `  allowed_pcr0: [${pcr0}]`, 'attestation:', `  test_roots_file: ${join(s.out, 'test-roots.pem')}`];
    // Pinaivu's evidence binds no TLS key: serve refuses to start until the operator accepts that.
    const config = join(s.out, 'unbound.yaml');
    await writeFile(config, ['upstreams:', '  - profile: pinaivu', `    url: ${s.url}`, ...section.map((l) => `    ${l}`), ''].join('\n'));
    const refused = spawnBin('tresor-attest', ['serve', '--config', config]);
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toMatch(/attestation\.allow_unbound_channel: profile pinaivu cannot bind the TLS channel/);
    const { res, verdict } = await serveProfile(s, 'pinaivu', [...section, '  allow_unbound_channel: true'], '4');
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-tresor-attestation']).toBe('verified; not freshness-bound; channel: unbound; test roots');
    expect(res.headers['x-tresor-workload-tag']).toBe(key);
    const answer = (await res.body.json()) as { request_id: string };
    const v = await verdict();
    expect(v).toMatchObject({ verdict: 'verified', receipt_id: answer.request_id });

    // Offline: the archived {receipt, proof} against the coordinator's attestation and the test root.
    const auditDir = join(s.out, 'state', 'audit');
    const archive = (await readdir(auditDir)).find((f) => /^receipts-\d{8}\.jsonl$/.test(f)) as string;
    const archived = JSON.parse(readFileSync(join(auditDir, archive), 'utf8').trim().split('\n')[0] as string) as { jws: string };
    const agent = new Agent({ connect: { ca: readFileSync(join(s.out, 'sim-ca.pem'), 'utf8') } });
    const att = await (await request(`${s.url}/get_attestation`, { dispatcher: agent })).body.text();
    await agent.close();
    await writeFile(join(s.out, 'att.json'), att);
    await writeFile(join(s.out, 'archived.json'), archived.jws);
    const verify = (...extra: string[]) => spawnBin('tresor-verify', ['pinaivu', join(s.out, 'archived.json'), '--attestation', join(s.out, 'att.json'), '--pcr', `0=${pcr0}`, ...extra]);
    const own = verify('--root', join(s.out, 'pinaivu-nitro-root.pem'));
    const aws = verify();
    expect(await own.exited, own.stdout() + own.stderr()).toBe(0);
    expect(own.stdout()).toMatch(/^PASS/);
    expect(await aws.exited).toBe(4);
  }, 60_000);

  test('--pinaivu-fault needs --profile pinaivu', async () => {
    const p = spawnBin('tresor-attest', ['sim', '--port', '0', '--pinaivu-fault', 'noProof']);
    expect(await p.exited).toBe(2);
    expect(p.stdout() + p.stderr()).toContain('--pinaivu-fault needs --profile pinaivu');
  });
});

describe('tresor-attest sim restarted (the README offline commands run twice)', () => {
  /** A port the OS says is free now; both runs of the simulator listen on it, as the README's fixed port. */
  const freePort = () =>
    new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const port = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
  /** One README round: the simulator on `port`, the daemon on `state`, one chat; both stopped after. */
  async function round(name: string, port: number, state: string, simArgs: string[]) {
    const out = join(scratch.dir, name);
    const s = spawnBin('tresor-attest', ['sim', '--port', String(port), '--write-dir', out, ...simArgs]);
    scratch.running.push(s);
    await waitFor(s, (o) => o.includes('wrote '), 20_000);
    const url = `https://127.0.0.1:${port}`;
    const d = spawnBin('tresor-attest', ['serve', '--upstream', url, '--ca-file', join(out, 'sim-ca.pem'), '--listen', '127.0.0.1:0', '--state-dir', state], {
      TRESOR_API_KEY: `tr-${'3'.repeat(96)}`,
      TRESOR_ATTEST_RELEASE_ROOT_FILE: join(out, 'release-root.pub'),
      TRESOR_ATTEST_TRUST_BUNDLE: `${url}/trust/router.json`,
      TRESOR_ATTEST_TEST_ROOTS_FILE: join(out, 'test-roots.pem'),
    });
    scratch.running.push(d);
    await waitFor(d, (o) => o.includes('serving OPENAI_BASE_URL='), 20_000);
    const base = /serving OPENAI_BASE_URL=(http:\/\/[^"\s]+)/.exec(d.stdout())?.[1] as string;
    const res = await request(`${base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"eu/tresor/gpt-oss-120b","messages":[]}' });
    const body = (await res.body.json()) as { error?: { code: string; message: string } };
    for (const p of [d, s]) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
    return { status: res.statusCode, body, simOut: s.stdout(), releaseRoot: readFileSync(join(out, 'release-root.pub'), 'utf8') };
  }

  test('without --keys-dir the second run is refused with an error that says what it means and what to do', async () => {
    const port = await freePort();
    const state = join(scratch.dir, 'fresh-keys-state');
    expect((await round('fresh-1', port, state, [])).status).toBe(200);
    const second = await round('fresh-2', port, state, []);
    expect(second.status).toBe(502);
    expect(second.body.error?.code).toBe('ERR_BUNDLE_EQUIVOCATION');
    expect(second.body.error?.message).toContain('claims version 17 but differs from the version 17 already accepted');
    expect(second.body.error?.message).toContain(`delete that file or use a fresh state_dir; start the simulator with --keys-dir DIR`);
    expect(second.simOut).toContain('new on every start: use --keys-dir to keep it');
  }, 90_000);

  test('with --keys-dir the keys are kept: the same release root, the next bundle version, and the daemon attests it again', async () => {
    const port = await freePort();
    const state = join(scratch.dir, 'kept-keys-state');
    const keys = ['--keys-dir', join(scratch.dir, 'sim-keys')];
    const first = await round('kept-1', port, state, keys);
    const second = await round('kept-2', port, state, keys);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.releaseRoot).toBe(first.releaseRoot);
    expect(first.simOut).toMatch(/trust bundle: +\S+ version 17 .*kept in /);
    expect(second.simOut).toMatch(/trust bundle: +\S+ version 18 /);
    expect(statSync(join(scratch.dir, 'sim-keys', 'release-root.key')).mode & 0o777).toBe(0o600);
  }, 90_000);
});
