import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { createPinaivuDeployment } from '../../src/sim/mint/pinaivu.js';
import { createAciDeployment } from '../../src/sim/mint/aci.js';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';
import { toPem } from '../../src/x509/certificate.js';
import { readAuditRecords } from '../helpers/audit.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/**
 * What the daemon claims about an upstream says exactly what was checked (#13 items 3-5): which
 * roots were trusted, whether the evidence was fresh (our nonce), whether the TLS channel is
 * bound. The headers, /status and each audit record agree; the real daemon, the simulator, the SDK.
 */
const MODEL = 'eu/tresor/gpt-oss-120b';
const open: Harness[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});
async function harness(opts: Parameters<typeof startHarness>[0] = {}): Promise<Harness> {
  const h = await startHarness(opts);
  open.push(h);
  return h;
}

type Identity = { freshness: string; channel: string; kind: string };
type UpstreamStatus = { attestation: { testRoots: string[] | null; identities: Identity[]; lastError?: { code: string; message: string } } };
const statusOf = async (h: Harness) => ((await (await fetch(`${h.origin}/status`)).json()) as { upstreams: UpstreamStatus[] }).upstreams[0]?.attestation;

/** One completion through the OpenAI SDK; its attestation header and its audit record. */
async function exchange(h: Harness) {
  const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
  const { response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'claims' }] }).withResponse();
  const requestId = response.headers.get('x-request-id') as string;
  const verdict = (await (await fetch(`${h.origin}/receipts/${requestId}?wait=20`)).json()) as { verdict: string; seq: number };
  const record = (await readAuditRecords(join(h.dir, 'state'))).find((r) => r.request_id === requestId) as { attestation: Record<string, unknown> };
  return { header: response.headers.get('x-tresor-attestation'), verdict, record };
}

async function chatStatus(h: Harness): Promise<{ status: number; body: { error: { type: string; code: string; message: string } } }> {
  const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'secret' }] }) });
  return { status: res.status, body: (await res.json()) as { error: { type: string; code: string; message: string } } };
}

describe('hardware roots are the vendors’ unless the operator says otherwise', () => {
  test.each(['snp', 'nitro'] as const)('a simulator bundle (%s) without attestation.test_roots_file: 502 naming the unpinned root and how to allow it; nothing forwarded', async (kind) => {
    const h = await harness({ evidenceKind: kind, attestation: { test_roots_file: null } });
    const code = kind === 'snp' ? 'ERR_BUNDLE_AMD_ARK_NOT_PINNED' : 'ERR_BUNDLE_NITRO_ROOT_NOT_PINNED';
    const { status, body } = await chatStatus(h);
    expect(status).toBe(502);
    expect(body.error).toMatchObject({ type: 'attestation_error', code });
    expect(body.error.message).toMatch(/not (an AMD ARK|the AWS Nitro root) pinned in certs\/; a test root .* attestation\.test_roots_file/);
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
    const s = await statusOf(h);
    expect(s).toMatchObject({ testRoots: null, identities: [], lastError: { code } });
    expect((await fetch(`${h.origin}/readyz`)).status).toBe(503);
    expect(h.logs.records.some((r) => /TEST ROOTS ARE TRUSTED/.test(String(r.msg)))).toBe(false);
  });

  test('with test roots: a warning at start, /status names the file, the header and every audit record say so', async () => {
    const h = await harness();
    const file = join(h.dir, 'test-roots.pem');
    const warning = h.logs.records.find((r) => /TEST ROOTS ARE TRUSTED/.test(String(r.msg)));
    expect(warning).toMatchObject({ level: 40, upstream: 'tresor', testRootsFiles: [file] });
    const { header, verdict, record } = await exchange(h);
    expect(header).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(verdict.verdict).toBe('verified');
    expect(record.attestation).toMatchObject({ kind: 'snp', freshness: 'nonce-bound', channel: 'bound', test_roots: true });
    expect(await statusOf(h)).toMatchObject({ testRoots: [file], identities: [{ freshness: 'nonce-bound', channel: 'bound' }] });
  });

  test('a test_roots_file that does not exist refuses the start', async () => {
    await expect(harness({ attestation: { test_roots_file: '/nonexistent/test-roots.pem' } })).rejects.toMatchObject({ code: 'ERR_CONFIG_TEST_ROOTS', phase: 'usage' });
  });

  test('the deprecated aci.amd_ark_file counts as a test root, with the same marking and a deprecation warning', async () => {
    const aci = await createAciDeployment();
    const arkDir = await mkdtemp(join(tmpdir(), 'tresor-ark-'));
    const ark = join(arkDir, 'aci-ark.pem');
    await writeFile(ark, toPem(aci.pki.ark));
    const h = await harness({ aci, attestation: { test_roots_file: null }, upstream: { aci: { allowed_measurements: [aci.measurement], amd_ark_file: ark } } });
    expect(h.logs.records.some((r) => r.key === 'aci.amd_ark_file' && /deprecated/.test(String(r.msg)))).toBe(true);
    const { header, record } = await exchange(h);
    expect(header).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(record.attestation).toMatchObject({ test_roots: true });
    expect(await statusOf(h)).toMatchObject({ testRoots: [ark] });
    await rm(arkDir, { recursive: true, force: true });
  });
});

describe('freshness is explicit', () => {
  test('a Tresor SNP router that does not sign the nonce: accepted by default and said to be not freshness-bound everywhere', async () => {
    const h = await harness({ evidenceFaults: { noNonceSupport: true } });
    const { header, verdict, record } = await exchange(h);
    expect(header).toBe('verified; not freshness-bound; channel: bound; test roots');
    expect(verdict.verdict).toBe('verified');
    expect(record.attestation).toMatchObject({ freshness: 'not freshness-bound' });
    expect((await statusOf(h))?.identities[0]).toMatchObject({ freshness: 'not freshness-bound' });
  });

  test('attestation.require_nonce: true refuses that router (502, nothing forwarded)', async () => {
    const h = await harness({ evidenceFaults: { noNonceSupport: true }, attestation: { require_nonce: true } });
    const { status, body } = await chatStatus(h);
    expect(status).toBe(502);
    expect(body.error.code).toBe('ERR_ATTEST_NONCE_MISMATCH');
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
  });

  test('the Nitro form of the envelope requires our nonce by default: a document without it is refused', async () => {
    const h = await harness({ evidenceKind: 'nitro', evidenceFaults: { noNonceSupport: true } });
    const { status, body } = await chatStatus(h);
    expect(status).toBe(502);
    expect(body.error).toMatchObject({ type: 'attestation_error', code: 'ERR_ATTEST_NONCE_MISMATCH' });
    expect(body.error.message).toContain('signs no nonce');
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
  });
});

describe('a profile that cannot bind the channel says so', () => {
  test('pinaivu behind a TLS man in the middle: the request flows (nothing binds the TLS key) and every claim says channel: unbound', async () => {
    const pinaivu = await createPinaivuDeployment();
    const h = await harness({ pinaivu });
    expect(h.logs.records.some((r) => r.channel === 'unbound' && /THE TLS CHANNEL IS NOT BOUND/.test(String(r.msg)) && r.level === 40)).toBe(true);
    // A relay with its own certificate (which the daemon trusts) in front of the simulated coordinator.
    const id = await generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: 'mitm' });
    const sockets = new Set<tls.TLSSocket>();
    const relay = tls.createServer({ cert: id.certPem, key: id.keyPem }, (client) => {
      const up = tls.connect({ host: '127.0.0.1', port: h.sim.port, ca: h.sim.caPem, servername: 'localhost' });
      sockets.add(client).add(up);
      client.pipe(up).pipe(client);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    await writeFile(join(h.dir, 'both.pem'), h.sim.caPem + id.certPem);
    try {
      const m = await harness({
        pinaivu,
        upstream: { url: `https://127.0.0.1:${(relay.address() as AddressInfo).port}`, ca_file: join(h.dir, 'both.pem') },
        attestation: { test_roots_file: join(h.dir, 'test-roots.pem') },
      });
      const { header, record } = await exchange(m);
      expect(header).toBe('verified; not freshness-bound; channel: unbound; test roots');
      expect(record.attestation).toMatchObject({ kind: 'nitro', channel: 'unbound', freshness: 'not freshness-bound', test_roots: true });
      expect((await statusOf(m))?.identities[0]).toMatchObject({ channel: 'unbound' });
    } finally {
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => relay.close(r));
    }
  });

  test('without attestation.allow_unbound_channel a pinaivu upstream does not start', async () => {
    const pinaivu = await createPinaivuDeployment();
    await expect(harness({ pinaivu, attestation: { allow_unbound_channel: false } })).rejects.toThrow(/attestation\.allow_unbound_channel: profile pinaivu cannot bind the TLS channel/);
  });
});
