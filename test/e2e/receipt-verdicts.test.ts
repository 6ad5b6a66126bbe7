import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';

const MODEL = 'eu/tresor/gpt-oss-120b';

async function chat(h: Harness): Promise<{ receiptId: string; attestation: string | null }> {
  const res = await fetch(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { tresor: { receipt_id: string } };
  return { receiptId: body.tresor.receipt_id, attestation: res.headers.get('x-tresor-attestation') };
}

async function verdictOf(h: Harness, id: string, wait = 30): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${h.origin}/receipts/${id}?wait=${wait}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const checkOf = (v: Record<string, unknown>, name: string) => (v.checks as { name: string }[]).find((c) => c.name === name);

async function until(f: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Attestation in warn mode while the router's attestation fails: the daemon forwards, but no
 * identity is pinned, so no trust bundle says which receipt keys may sign. The receipts carry no
 * router evidence here, so the key is the only thing that stands between the JWKS and `verified`.
 */
const unpinned = (deadline: number) =>
  startHarness({
    evidenceFaults: { wrongMeasurement: true },
    attestation: { mode: 'warn' },
    sim: { faults: { receiptClaimOverrides: { router_attestation: undefined } } },
    upstream: { receipts: { mode: 'audit', fetch_delay_seconds: 0, deadline_seconds: deadline } },
  });

describe('the receipt-key allowlist never fails open', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  test('no fresh identity within the bound: unverifiable (ERR_RECEIPT_KEY_UNPINNED), the JWKS is never consulted', async () => {
    h = await unpinned(1);
    const { receiptId, attestation } = await chat(h);
    expect(attestation).toBe('unverified-warn-mode');
    const v = await verdictOf(h, receiptId);
    expect(v.body).toMatchObject({ verdict: 'unverifiable', code: 'ERR_RECEIPT_KEY_UNPINNED' });
    expect(checkOf(v.body, 'receipt_key')).toMatchObject({ result: 'unverifiable', code: 'ERR_RECEIPT_KEY_UNPINNED' });
    expect(h.sim.requestCounts.get('/.well-known/jwks.json') ?? 0).toBe(0);
  });

  test('an identity pinned during the wait: the receipt is then checked under its trust bundle', async () => {
    const w = await unpinned(60);
    h = w;
    const first = await chat(w);
    // The receipt is fetched and waits for an identity.
    await until(() => (w.sim.requestCounts.get('/v1/receipts') ?? 0) >= 1);
    expect((await verdictOf(w, first.receiptId, 0)).status).toBe(202);
    // The router's attestation recovers; a new connection gets attested.
    w.evidence.faults.wrongMeasurement = false;
    await until(async () => {
      await w.sim.rotateTlsKey();
      return (await chat(w)).attestation?.startsWith('verified-warn-mode;') ?? false;
    });
    const v = await verdictOf(w, first.receiptId);
    expect(v.body).toMatchObject({ verdict: 'verified' });
    expect(checkOf(v.body, 'receipt_key')).toMatchObject({ result: 'skip', detail: expect.stringMatching(/^trust bundle v17 lists no receipt signing keys/) });
  });
});

describe('inference_attestation under receipts.inference_policy (required)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ upstream: { receipts: { mode: 'audit', fetch_delay_seconds: 0, inference_policy: { snp: { allowed_measurements: ['ab'.repeat(48)] } } } } });
  });
  afterAll(() => h.close());

  test.each([
    { name: 'absent', block: null, verdict: 'unverifiable', code: 'ERR_RECEIPT_INFERENCE_ABSENT' },
    { name: 'of a kind this verifier cannot check', block: { kind: 'tdx', quote_b64: 'AAAA' }, verdict: 'unverifiable', code: 'ERR_RECEIPT_INFERENCE_KIND_UNKNOWN' },
    { name: 'of a kind the policy does not allow', block: { kind: 'nitro', document_b64: 'AAAA' }, verdict: 'failed', code: 'ERR_RECEIPT_INFERENCE_NOT_ALLOWED' },
    { name: 'an SNP report that does not verify', block: { kind: 'snp', report_b64: Buffer.alloc(1184).toString('base64'), vcek_chain_pem: 'x' }, verdict: 'failed', code: undefined },
  ])('inference evidence $name: $verdict', async ({ block, verdict, code }) => {
    h.sim.faults.receiptClaimOverrides = block ? { inference_attestation: block } : null;
    const v = (await verdictOf(h, (await chat(h)).receiptId)).body;
    expect(v.verdict).toBe(verdict);
    if (code) expect(v.code).toBe(code);
    expect(checkOf(v, 'inference_attestation')).toMatchObject({ result: verdict === 'failed' ? 'fail' : 'unverifiable' });
  });
});
