import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { join } from 'node:path';
import { readArchive } from '../../src/audit/archive.js';
import { defaultFaults } from '../../src/sim/faults.js';
import { topLevelMemberText } from '../../src/util/json-member.js';
import { parseJws } from '../../src/util/jws.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const MODEL = 'eu/tresor/gpt-oss-120b';

async function chat(h: Harness, extraHeaders: Record<string, string> = {}): Promise<{ reqId: string; receiptId: string | undefined; status: number }> {
  const res = await fetch(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...extraHeaders },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const body = (await res.json()) as { tresor?: { receipt_id?: string } };
  return { reqId: res.headers.get('x-request-id') as string, receiptId: body.tresor?.receipt_id, status: res.status };
}

async function verdictOf(h: Harness, id: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${h.origin}/receipts/${id}?wait=30`);
  const v = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(v)).toBe(200);
  return v;
}

describe('receipt faults (audit mode): every outcome recorded with its own code', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ upstream: { receipts: { mode: 'audit', not_found_grace_seconds: 3, deadline_seconds: 6, jwks_cooldown_seconds: 1, jwks_max_age_seconds: 1 } } });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    Object.assign(h.sim.faults, defaultFaults());
  });

  test('503 storm with Retry-After, then recovery: verified', async () => {
    h.sim.faults.statusStorm = { pathPrefix: '/v1/receipts', status: 503, count: 3, retryAfterSeconds: 0 };
    const before = h.sim.requestCounts.get('/v1/receipts') ?? 0;
    const { receiptId } = await chat(h);
    expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'verified' });
    expect((h.sim.requestCounts.get('/v1/receipts') ?? 0) - before).toBe(4);
  });

  test('404 until the receipt is stored, then verified', async () => {
    h.sim.faults.receiptDelayMs = 1200;
    const { receiptId } = await chat(h);
    expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'verified' });
  });

  test('404 for longer than the grace window: missing', async () => {
    h.sim.faults.receiptDelayMs = 60_000;
    const { receiptId } = await chat(h);
    expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'missing', code: 'ERR_RECEIPT_NOT_FOUND' });
  });

  test('401 is final: missing, ERR_RECEIPT_UNAUTHORIZED, one attempt', async () => {
    h.sim.faults.statusStorm = { pathPrefix: '/v1/receipts', status: 401, count: 5 };
    const before = h.sim.requestCounts.get('/v1/receipts') ?? 0;
    const { receiptId } = await chat(h);
    expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'missing', code: 'ERR_RECEIPT_UNAUTHORIZED' });
    expect((h.sim.requestCounts.get('/v1/receipts') ?? 0) - before).toBe(1);
  });

  test('JWKS unreachable after a key rotation: unverifiable, then verified once it is back', async () => {
    await h.sim.rotateReceiptKey();
    h.sim.faults.statusStorm = { pathPrefix: '/.well-known/jwks.json', status: 503, count: 1000 };
    const first = await chat(h);
    expect(await verdictOf(h, first.receiptId as string)).toMatchObject({ verdict: 'unverifiable', code: 'ERR_JWKS_FETCH' });
    h.sim.faults.statusStorm = null;
    const second = await chat(h);
    expect(await verdictOf(h, second.receiptId as string)).toMatchObject({ verdict: 'verified' });
  });

  const forged: [string, (f: ReturnType<typeof defaultFaults>) => void, string][] = [
    ['alg none', (f) => (f.receiptAlg = 'none'), 'ERR_RECEIPT_ALG_NOT_ALLOWED'],
    ['HS256 keyed with the public key', (f) => (f.receiptAlg = 'HS256'), 'ERR_RECEIPT_ALG_NOT_ALLOWED'],
    ['ES384', (f) => (f.receiptAlg = 'ES384'), 'ERR_RECEIPT_ALG_NOT_ALLOWED'],
    ['wrong key', (f) => (f.receiptWrongKey = true), 'ERR_RECEIPT_SIGNATURE'],
    ['payload tampered after signing', (f) => (f.receiptTamper = true), 'ERR_RECEIPT_SIGNATURE'],
    ['jti mismatch', (f) => (f.receiptClaimOverrides = { jti: '11111111-1111-4111-8111-111111111111' }), 'ERR_RECEIPT_JTI_MISMATCH'],
    ['route swap', (f) => (f.receiptClaimOverrides = { routed_model: 'us/other/model' }), 'ERR_RECEIPT_MODEL_MISMATCH'],
    ['requested route differs', (f) => (f.receiptClaimOverrides = { requested_route: 'auto/auto/other' }), 'ERR_RECEIPT_ROUTE_MISMATCH'],
    ['failover flag inconsistent', (f) => (f.receiptClaimOverrides = { failover: true }), 'ERR_RECEIPT_FAILOVER_MISMATCH'],
    ['request digest mismatch', (f) => (f.receiptClaimOverrides = { request_digest: `sha256:${'0'.repeat(64)}` }), 'ERR_RECEIPT_REQUEST_DIGEST'],
    ['response digest mismatch', (f) => (f.receiptClaimOverrides = { response_digest: `sha256:${'0'.repeat(64)}` }), 'ERR_RECEIPT_RESPONSE_DIGEST'],
  ];
  for (const [name, set, code] of forged) {
    test(`forged receipt: ${name} → failed, ${code}`, async () => {
      set(h.sim.faults);
      const { receiptId } = await chat(h);
      expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'failed', code });
    });
  }

  test('a DER-encoded signature (the docs sample form) verifies and is flagged non-standard', async () => {
    h.sim.faults.receiptDerSignature = true;
    const { receiptId } = await chat(h);
    const v = await verdictOf(h, receiptId as string);
    expect(v).toMatchObject({ verdict: 'verified' });
    expect(JSON.stringify(v.checks)).toContain('DER-encoded: non-standard');
  });

  test('a digest in an unknown form is unverifiable, never a pass', async () => {
    h.sim.faults.receiptClaimOverrides = { response_digest: 'md5:abc' };
    const { receiptId } = await chat(h);
    expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'unverifiable' });
  });

  test("router_attestation binding a TLS key the daemon never verified: failed, ERR_RECEIPT_ROUTER_KEY_UNKNOWN", async () => {
    h.sim.faults.receiptClaimOverrides = { router_attestation: await h.evidence.envelope({ spkiSha256: 'ab'.repeat(32) }) };
    const { receiptId } = await chat(h);
    const v = await verdictOf(h, receiptId as string);
    expect(v).toMatchObject({ verdict: 'failed', code: 'ERR_RECEIPT_ROUTER_KEY_UNKNOWN' });
  });

  test('router_attestation recognised by its exact bytes: the same block again verifies, one byte changed inside it is checked in full and fails', async () => {
    // The block the simulator embeds, as the daemon archived it (verified: parsed and checked in full once).
    const first = await chat(h);
    expect(await verdictOf(h, first.receiptId as string)).toMatchObject({ verdict: 'verified' });
    const archived = [...(await readArchive(join(h.dir, 'state', 'audit'))).values()].map((jws) => parseJws(jws, { code: 'T', maxBytes: 1 << 20, what: 'receipt' }).payloadText);
    const text = topLevelMemberText(archived.find((p) => p.includes(first.receiptId as string)) as string, 'router_attestation') as string;
    const block = JSON.parse(text) as Record<string, string>;
    expect(JSON.stringify(block)).toBe(text);
    // Byte for byte the same block (the simulator serialises it the same way): the known block, verified.
    h.sim.faults.receiptClaimOverrides = { router_attestation: block };
    const same = await chat(h);
    expect(await verdictOf(h, same.receiptId as string)).toMatchObject({ verdict: 'verified' });
    // One hex digit of the TLS key it binds changed: a new text, parsed and verified in full, refused as before.
    const spki = block.tls_spki_sha256 as string;
    h.sim.faults.receiptClaimOverrides = { router_attestation: { ...block, tls_spki_sha256: `${spki[0] === 'a' ? 'b' : 'a'}${spki.slice(1)}` } };
    const changed = await chat(h);
    expect(await verdictOf(h, changed.receiptId as string)).toMatchObject({ verdict: 'failed', checks: expect.arrayContaining([expect.objectContaining({ name: 'router_attestation', result: 'fail' })]) });
  });

  test('router_attestation that is not an envelope: failed with the parse code', async () => {
    h.sim.faults.receiptClaimOverrides = { router_attestation: { schema: 'something/else' } };
    const { receiptId } = await chat(h);
    expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'failed', code: 'ERR_ATTEST_SCHEMA' });
  });

  test('inference_attestation without receipts.inference_policy: skip: no policy (shown, informational), whatever its kind or state', async () => {
    h.sim.faults.receiptClaimOverrides = { inference_attestation: { kind: 'tdx', quote_b64: 'AAAA' } };
    const a = await chat(h);
    const va = await verdictOf(h, a.receiptId as string);
    expect(va).toMatchObject({ verdict: 'verified' });
    expect(va.checks).toContainEqual({ name: 'inference_attestation', result: 'skip', detail: 'no policy (tdx evidence not checked)' });
    h.sim.faults.receiptClaimOverrides = { provider_attestation: { kind: 'snp', report_b64: Buffer.alloc(1184).toString('base64'), vcek_chain_pem: (await h.evidence.envelope({ spkiSha256: 'cd'.repeat(32) })).vcek_chain_pem } };
    const b = await chat(h);
    const vb = await verdictOf(h, b.receiptId as string);
    expect(vb).toMatchObject({ verdict: 'verified' });
    expect(vb.checks).toContainEqual({ name: 'inference_attestation', result: 'skip', detail: 'no policy (snp evidence not checked)' });
  });

  // Last: it leaves the daemon's JWKS cache without the active key for a cooldown.
  test('forged receipt: key removed from the JWKS → failed, ERR_JWKS_NO_MATCHING_KEY', async () => {
    h.sim.faults.jwksDropKids = ['router-receipt-1', 'router-receipt-2'];
    // The daemon's JWKS cache lives 1 s here: let the removal take effect.
    await new Promise((r) => setTimeout(r, 1100));
    const { receiptId } = await chat(h);
    expect(await verdictOf(h, receiptId as string)).toMatchObject({ verdict: 'failed', code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });
});

describe('receipts.mode strict', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ upstream: { receipts: { mode: 'strict', not_found_grace_seconds: 2, deadline_seconds: 4 } } });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    Object.assign(h.sim.faults, defaultFaults());
  });

  test('a non-stream answer is released only once its receipt verified, with the verdict in headers', async () => {
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }) });
    const body = (await res.json()) as { tresor: { receipt_id: string } };
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tresor-receipt-verdict')).toBe('verified');
    expect(res.headers.get('x-tresor-receipt-id')).toBe(body.tresor.receipt_id);
  });

  test('a forged receipt turns the answer into a 502 naming the failing check', async () => {
    h.sim.faults.receiptClaimOverrides = { routed_model: 'us/other/model' };
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }) });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_RECEIPT_MODEL_MISMATCH');
  });

  test('a stream flows, its final [DONE] waits for the verdict', async () => {
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'x' }] }) });
    const text = await res.text();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(text).not.toContain('event: error');
  });

  test('a stream with a bad receipt ends with an SSE error event instead of [DONE]', async () => {
    h.sim.faults.receiptTamper = true;
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'x' }] }) });
    const text = await res.text();
    expect(text).toContain('"finish_reason":"stop"');
    expect(text).not.toContain('[DONE]');
    expect(text).toMatch(/event: error\ndata: .*ERR_RECEIPT_SIGNATURE/);
  });

  test('opting out is honoured in strict mode (nothing to wait for)', async () => {
    const r = await chat(h, { 'x-tresor-receipt': 'false' });
    expect(r.status).toBe(200);
  });
});

describe('receipts.mode strict: the held answer is bounded', () => {
  test('a non-stream answer larger than the hold limit fails closed (502) instead of being buffered without bound', async () => {
    const h = await startHarness({ sim: { deterministic: { jsonBytes: 9 * 1024 * 1024, streamChunks: 2, chunkIntervalMs: 0 } }, upstream: { receipts: { mode: 'strict' } } });
    try {
      const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }) });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_RESPONSE_TOO_LARGE_TO_HOLD');
    } finally {
      await h.close();
    }
  });
});
