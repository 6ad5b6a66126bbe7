import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const chat = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'the secret prompt' }] });
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function harness(opts: Parameters<typeof startHarness>[0] = {}): Promise<Harness> {
  const h = await startHarness(opts);
  cleanups.push(() => h.close());
  return h;
}

const ready = async (h: Harness) => (await (await request(`${h.origin}/readyz`)).body.json()) as { ready: boolean; reasons?: string[] };
async function until(cond: () => Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the daemon enforces router attestation', () => {
  test('a verified router: ready, requests flow, responses say what was verified', async () => {
    const h = await harness();
    await until(async () => (await ready(h)).ready);
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(res.headers['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(res.headers['x-tresor-measurement']).toBe(h.evidence.measurement);
    expect(res.headers['x-tresor-workload-tag']).toBe(h.evidence.tag);
    expect(res.headers['x-tresor-tls-spki-sha256']).toBe(h.sim.spkiSha256);
    const status = (await (await request(`${h.origin}/status`)).body.json()) as { upstreams: { attestation: { identities: { measurement: string; bundleVersion: number }[] } }[] };
    expect(status.upstreams[0]?.attestation.identities[0]).toMatchObject({ measurement: h.evidence.measurement, bundleVersion: 17 });
    expect(h.logs.records.some((r) => r.event === 'attestation.verified')).toBe(true);
  });

  test('a man in the middle with its own TLS key: 502 with the check that failed, and not one byte of the request reaches the router', async () => {
    const h = await harness({ upstream: {} });
    // A TLS-terminating relay (trusted through ca_file) in front of the genuine simulator.
    const id = await generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: 'mitm' });
    const relay = tls.createServer({ cert: id.certPem, key: id.keyPem }, (client) => {
      const up = tls.connect({ host: '127.0.0.1', port: h.sim.port, ca: h.sim.caPem, servername: 'localhost' });
      client.pipe(up).pipe(client);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => relay.close(r)));
    await writeFile(join(h.dir, 'both.pem'), h.sim.caPem + id.certPem);
    const m = await harness({
      upstream: {
        url: `https://127.0.0.1:${(relay.address() as AddressInfo).port}`,
        ca_file: join(h.dir, 'both.pem'),
        attestation: { mode: 'enforce', release_root_file: join(h.dir, 'release-root.pub'), trust_bundle: h.evidence.bundleUrl, test_roots_file: join(h.dir, 'test-roots.pem') },
      },
    });
    // The relay forwards to h.sim (whose evidence the release root above verifies), not m.sim.
    const before = h.sim.requestCounts.get('/v1/chat/completions') ?? 0;
    const res = await request(`${m.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat });
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { type: 'attestation_error', code: 'ERR_ATTEST_SPKI_MISMATCH' } });
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(before);
    expect((await ready(m)).ready).toBe(false);
  });

  test('evidence the bundle does not allow: not ready, 502 with its code, nothing forwarded', async () => {
    const h = await harness({ evidenceFaults: { wrongMeasurement: true } });
    await until(async () => (await ready(h)).reasons?.some((r) => r.includes('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED')) ?? false);
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat });
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' } });
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
    expect(h.logs.records.some((r) => r.event === 'attestation.failed' && r.code === 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED')).toBe(true);
  });

  test("the signed bundle tightens the SNP policy: its snp.allow_smt false refuses the SMT guest (config allows SMT), nothing forwarded", async () => {
    const h = await harness({ evidenceFaults: { bundleRefusesSmt: true } });
    await until(async () => (await ready(h)).reasons?.some((r) => r.includes('ERR_POLICY_SNP_SMT')) ?? false);
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat });
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { code: 'ERR_POLICY_SNP_SMT' } });
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
  });

  test('warn mode (chosen explicitly) forwards despite a failure, logs it loudly and says so in every response', async () => {
    const w = await harness({ evidenceFaults: { tagNotAllowed: true }, attestation: { mode: 'warn' } });
    await until(async () => w.logs.records.some((r) => r.event === 'attestation.failed' && r.code === 'ERR_ATTEST_TAG_NOT_ALLOWED'));
    expect(w.logs.records.some((r) => typeof r.msg === 'string' && r.msg.includes('ATTESTATION IS NOT ENFORCED'))).toBe(true);
    const res = await request(`${w.base}/models`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(res.headers['x-tresor-attestation']).toBe('unverified-warn-mode');
    expect((await ready(w)).ready).toBe(true);
  });

  test('normal CA validation stays on top of the pin: a new router certificate the CA file does not trust fails TLS first', async () => {
    const h = await harness();
    await until(async () => (await ready(h)).ready);
    const first = h.sim.spkiSha256;
    await h.sim.rotateTlsKey({ foreignCa: true });
    await h.daemon.upstreams.get('tresor')?.resetConnections();
    const res = await request(`${h.base}/models`);
    // The daemon trusts only the simulator CA through ca_file: a certificate from another CA fails
    // TLS validation before attestation (normal CA validation stays on top).
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { code: 'upstream_tls_failed' } });
    expect(h.sim.spkiSha256).not.toBe(first);
  });
});
