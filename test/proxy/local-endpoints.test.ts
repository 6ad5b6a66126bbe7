import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';

/** The daemon's own endpoints, over HTTP against a real daemon and the simulated router. */
describe('local endpoints', () => {
  let h: Harness;
  let receiptId: string;
  beforeAll(async () => {
    h = await startHarness();
    const deadline = Date.now() + 15_000;
    while ((await fetch(`${h.origin}/readyz`)).status !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    receiptId = ((await res.json()) as { tresor: { receipt_id: string } }).tresor.receipt_id;
  });
  afterAll(() => h?.close());

  test('/readyz and /status describe the attested upstream', async () => {
    expect(await (await fetch(`${h.origin}/readyz`)).json()).toEqual({ ready: true, upstream: 'tresor' });
    const status = (await (await fetch(`${h.origin}/status`)).json()) as { service: string; shuttingDown: boolean; upstreams: { name: string; listen: string; ready: { ready: boolean }; counters: { requests: number } }[] };
    expect(status).toMatchObject({ service: 'tresor-attest', shuttingDown: false });
    expect(status.upstreams[0]).toMatchObject({ name: 'tresor', listen: h.origin, ready: { ready: true } });
    expect(status.upstreams[0]?.counters.requests).toBeGreaterThanOrEqual(1);
  });

  test('/receipts/{id} waits for the verdict; /status/recent lists it, filters by verdict, and refuses an unknown one', async () => {
    const v = (await (await fetch(`${h.origin}/receipts/${receiptId}?wait=10`)).json()) as { verdict: string };
    expect(v.verdict).toBe('verified');
    const recent = (await (await fetch(`${h.origin}/status/recent?limit=5`)).json()) as { counts: { verified: number }; receipts: { receipt_id?: string; verdict: string }[]; filter: string | null };
    expect(recent.filter).toBeNull();
    expect(recent.counts.verified).toBeGreaterThanOrEqual(1);
    expect(recent.receipts.find((r) => r.receipt_id === receiptId)?.verdict).toBe('verified');
    const failed = (await (await fetch(`${h.origin}/status/recent?verdict=failed`)).json()) as { receipts: unknown[]; filter: string };
    expect(failed).toMatchObject({ filter: 'failed', receipts: [] });
    const bad = await fetch(`${h.origin}/status/recent?verdict=fine`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('ERR_STATUS_FILTER');
    const notVerdict = await fetch(`${h.origin}/receipts/`);
    expect(notVerdict.status).toBe(404);
    expect(((await notVerdict.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  test('/metrics answers GET with the exposition and HEAD without a body; the status page is HTML', async () => {
    const get = await fetch(`${h.origin}/metrics`);
    expect(get.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await get.text()).toMatch(/^tresor_attest_http_requests_total\{/m);
    const head = await fetch(`${h.origin}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const page = await fetch(`${h.origin}/`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  });
});
