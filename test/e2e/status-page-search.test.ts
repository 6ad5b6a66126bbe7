import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ROOT } from '../helpers/spawn.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`status page search test SKIPPED: no Chromium at ${CHROMIUM}. Install it with \`npm run setup:test-tools\` or set CHROMIUM_PATH.`);

const MODEL = 'eu/tresor/gpt-oss-120b';
const receiptIdOf = (c: unknown) => (c as { tresor: { receipt_id: string } }).tresor.receipt_id;
interface Rec {
  seq: number;
  receipt_id?: string;
  request_id: string;
  verdict: string;
  checks: { name: string; result: string; code?: string }[];
  route_served?: string;
  fetch_attempts?: number;
  attestation?: Record<string, unknown>;
}

/** Rows of the receipts table as the page shows them. */
const rows = (page: Page) => page.locator('#receipts tbody tr[data-seq]').evaluateAll((trs) => trs.map((t) => ({ seq: Number(t.getAttribute('data-seq')), id: t.getAttribute('data-receipt-id'), verdict: t.getAttribute('data-verdict') })));

describe.skipIf(!haveChromium)('the status page: search, paging through the whole audit log, filters, detail, charts (headless Chromium)', () => {
  let browser: Browser;
  let auditDir: string;
  let first: Harness;
  let h: Harness;
  const earlier: string[] = [];
  let failedId = '';
  const artifacts = join(ROOT, 'test-artifacts');
  beforeAll(async () => {
    auditDir = await mkdtemp(join(tmpdir(), 'tresor-page-audit-'));
    // An earlier run of the daemon wrote to the same audit log: its receipts are in no memory of the next one.
    first = await startHarness({ config: { audit: { dir: auditDir } } });
    const c1 = new OpenAI({ baseURL: first.base, apiKey: 'app', maxRetries: 0 });
    for (let i = 0; i < 3; i++) earlier.push(receiptIdOf(await c1.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `earlier ${i}` }] })));
    for (const id of earlier) await (await fetch(`${first.origin}/receipts/${id}?wait=10`)).arrayBuffer();
    await first.close();
    h = await startHarness({ config: { audit: { dir: auditDir } } });
    const c2 = new OpenAI({ baseURL: h.base, apiKey: 'app', maxRetries: 0 });
    const ok = receiptIdOf(await c2.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'now' }] }));
    h.sim.faults.receiptTamper = true;
    failedId = receiptIdOf(await c2.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'tampered' }] }));
    h.sim.faults.receiptTamper = false;
    await c2.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'opted out' }] }, { headers: { 'X-Tresor-Receipt': 'false' } });
    for (const id of [ok, failedId]) await (await fetch(`${h.origin}/receipts/${id}?wait=10`)).arrayBuffer();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    await mkdir(artifacts, { recursive: true });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await rm(auditDir, { recursive: true, force: true });
  });

  test('pages of 2 go back through both runs; search by id; click shows every check; filters; charts; a screenshot', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    const consoleErrors: string[] = [];
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    page.setDefaultTimeout(15_000);
    await page.goto(`${h.origin}/?refresh=1&page=2`);
    await page.waitForSelector('#receipts tbody tr[data-seq]');

    // Paging: 6 records (3 from the earlier run), 2 a page, newest first, to the start of the log.
    const seen: { seq: number; id: string | null; verdict: string | null }[] = [];
    for (let n = 1; ; n++) {
      await page.waitForFunction((p) => (globalThis as unknown as { document: { querySelector(s: string): { dataset: Record<string, string> } | null } }).document.querySelector('#search-status')?.dataset.page === String(p), n);
      const r = await rows(page);
      expect(r.length).toBeLessThanOrEqual(2);
      seen.push(...r);
      if (await page.isDisabled('#older')) break;
      await page.click('#older');
    }
    expect(seen.map((r) => r.seq)).toEqual([...seen.map((r) => r.seq)].sort((a, b) => b - a));
    expect(seen).toHaveLength(6);
    expect(seen.slice(-3).map((r) => r.id)).toEqual([...earlier].reverse());
    expect(await page.textContent('#search-status')).toContain('the start of the log');
    await page.click('#newer');
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): { dataset: Record<string, string> } | null } }).document.querySelector('#search-status')?.dataset.page === '2');

    // Search an id from the earlier run, click the row: the detail shows every check of the record.
    const api = (await (await fetch(`${h.origin}/status/receipts?id=${earlier[0]}`)).json()) as { receipts: Rec[] };
    const rec = api.receipts[0] as Rec;
    expect(rec.verdict).toBe('verified');
    await page.fill('#search', earlier[0] as string);
    await page.press('#search', 'Enter');
    await expect.poll(async () => (await rows(page)).map((r) => r.id)).toEqual([earlier[0]]);
    await page.click(`#receipts tbody tr[data-receipt-id="${earlier[0]}"]`);
    await page.waitForSelector('#detail:not([hidden])');
    expect(await page.textContent('#detail [data-field="receipt-id"]')).toBe(earlier[0]);
    expect(await page.textContent('#detail [data-field="request-id"]')).toBe(rec.request_id);
    const shown = await page.locator('#detail-checks tbody tr[data-check]').evaluateAll((trs) => trs.map((t) => [t.getAttribute('data-check'), t.getAttribute('data-result')]));
    expect(rec.checks.length).toBeGreaterThan(2);
    expect(shown).toEqual(rec.checks.map((c) => [c.name, c.result]));
    expect(await page.textContent('#detail [data-field="route-served"]')).toContain(rec.route_served ?? '-');
    expect(await page.textContent('#detail [data-field="fetch-attempts"]')).toBe(String(rec.fetch_attempts ?? '-'));
    expect(await page.locator('#detail-digests tr[data-digest="response"] .badge').textContent()).toBe('match');
    if (rec.attestation) for (const [k, v] of Object.entries(rec.attestation)) if (typeof v === 'string') expect(await page.textContent(`#detail dd[data-key="${k}"]`)).toBe(v);

    // The failed receipt: its failing check and code.
    await page.fill('#search', failedId);
    await page.press('#search', 'Enter');
    await expect.poll(async () => (await rows(page)).map((r) => r.verdict)).toEqual(['failed']);
    await page.click('#receipts tbody tr[data-verdict="failed"]');
    await expect.poll(() => page.textContent('#detail [data-field="receipt-id"]')).toBe(failedId);
    expect(await page.locator('#detail-checks tr[data-result="fail"]').count()).toBeGreaterThan(0);
    expect(await page.textContent('#detail [data-field="verdict"]')).toMatch(/^failed ERR_[A-Z_]+/);

    // Filters: verdict, upstream, route, time range.
    await page.fill('#search', '');
    await page.selectOption('#verdict-filter', 'opted_out');
    await expect.poll(async () => (await rows(page)).map((r) => r.verdict)).toEqual(['opted_out']);
    await page.selectOption('#verdict-filter', '');
    await page.selectOption('#upstream-filter', 'tresor');
    await page.selectOption('#route-filter', '/v1/embeddings');
    await expect.poll(async () => (await rows(page)).length).toBe(0);
    await page.selectOption('#route-filter', '/v1/chat/completions');
    await expect.poll(async () => (await rows(page)).length).toBe(2);
    const minute = (ms: number) => new Date(ms).toISOString().slice(0, 16);
    await page.fill('#from', minute(Date.now() + 120_000));
    await page.dispatchEvent('#from', 'change');
    await expect.poll(async () => (await rows(page)).length).toBe(0);
    await page.fill('#from', '');
    await page.fill('#to', minute(Date.now() - 3_600_000));
    await page.dispatchEvent('#to', 'change');
    await expect.poll(async () => (await rows(page)).length).toBe(0);
    await page.fill('#to', minute(Date.now() + 120_000));
    await page.dispatchEvent('#to', 'change');
    await expect.poll(async () => (await rows(page)).length).toBe(2);

    // Rates: one chart per series, drawn from successive /metrics samples.
    const c = new OpenAI({ baseURL: h.base, apiKey: 'app', maxRetries: 0 });
    await c.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'for the chart' }] });
    await expect.poll(() => page.getAttribute('[data-chart="requests"]', 'data-points'), { timeout: 10_000 }).not.toBe('0');
    for (const k of ['requests', 'verified', 'not-verified', 'attestation-failures']) expect(await page.locator(`[data-chart="${k}"] svg polyline`).count()).toBe(1);
    expect(await page.textContent('[data-field="circuit"]')).not.toBe('');
    expect(await page.textContent('[data-field="jwks"]')).toMatch(/^ok [1-9]\d*, failed 0$/);
    expect(await page.textContent('[data-field="bundle-fetches"]')).toMatch(/^ok [1-9]\d*, failed 0$/);
    await page.screenshot({ path: join(artifacts, 'status-page-healthy.png'), fullPage: true });
    expect(consoleErrors).toEqual([]);
    await page.close();
  }, 120_000);

  test('a failing upstream: not ready, the attestation errors grouped with their count and the rejected value; a screenshot', async () => {
    const bad = await startHarness({ evidenceFaults: { wrongMeasurement: true } });
    try {
      for (let i = 0; i < 2; i++) await (await fetch(`${bad.base}/models`)).arrayBuffer();
      const status = (await (await fetch(`${bad.origin}/status`)).json()) as { upstreams: { attestation: { lastError: { code: string; message: string } } }[] };
      const last = status.upstreams[0]?.attestation.lastError;
      expect(last?.code).toBe('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED');
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      await page.goto(`${bad.origin}/?refresh=1`);
      const group = page.locator('#errors li[data-error-kind="attestation"][data-code="ERR_ATTEST_MEASUREMENT_NOT_ALLOWED"]').first();
      await group.waitFor();
      expect(Number(await group.getAttribute('data-count'))).toBeGreaterThanOrEqual(1);
      expect(await group.locator('[data-field="rejected"]').textContent()).toBe(last?.message);
      expect(await page.textContent('[data-upstream="tresor"] h3')).toContain('not ready');
      await page.screenshot({ path: join(artifacts, 'status-page-failing.png'), fullPage: true });
      await page.close();
    } finally {
      await bad.close();
    }
  });
});
