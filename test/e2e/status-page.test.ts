import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REAL_KEY, startHarness, type Harness } from '../helpers/harness.js';
import { ROOT } from '../helpers/spawn.js';

/** Debian's chromium (`npm run setup:browser` installs it); CHROMIUM_PATH overrides. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(`status page browser test SKIPPED: no Chromium at ${CHROMIUM}. Install it with \`npm run setup:browser\` (Debian: apt-get install -y chromium) or set CHROMIUM_PATH.`);
}

/** The little of the DOM the browser-side functions use. */
interface Dom {
  document: {
    querySelector(s: string): { textContent: string | null } | null;
    querySelectorAll(s: string): Iterable<{ dataset: Record<string, string | undefined> }> & { length: number };
  };
}

const TOKEN = `page-token-${'c3'.repeat(16)}`;
const PROMPT = 'status-page-prompt-text-91b2';

describe.skipIf(!haveChromium)('the status page in headless Chromium, during real traffic', () => {
  let h: Harness;
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tresor-page-'));
    await writeFile(join(dir, 'token'), TOKEN);
    h = await startHarness({ upstream: { local_token_file: join(dir, 'token'), max_body_bytes: 8192 } });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('identity, expiry, verdict counts, newest-first receipts with a verdict filter, errors; no secrets; offline', async () => {
    const context = await browser.newContext({ httpCredentials: { username: 'operator', password: TOKEN }, viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const requested: string[] = [];
    const consoleErrors: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    const res = await page.goto(`${h.origin}/?refresh=1`);
    expect(res?.status()).toBe(200);
    await page.waitForSelector('[data-upstream="tresor"] [data-field="identity"]', { timeout: 15_000 });

    // Real traffic while the page is open: the app authenticates with the token as its API key.
    const client = new OpenAI({ baseURL: h.base, apiKey: TOKEN, maxRetries: 0 });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const c = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: `${PROMPT} ${i}` }] });
      ids.push((c as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id);
    }
    await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: PROMPT }] }, { headers: { 'X-Tresor-Receipt': 'false' } });
    h.sim.faults.receiptTamper = true;
    const tampered = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: PROMPT }] });
    const failedId = (tampered as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id;
    h.sim.faults.receiptTamper = false;
    const tooLarge = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: 'x'.repeat(20_000) });
    expect(tooLarge.status).toBe(413);
    for (const id of [...ids, failedId]) await fetch(`${h.origin}/receipts/${id}?wait=10`, { headers: { 'x-tresor-local-token': TOKEN } });

    // The page refreshes by itself (no reload): counts, rows and errors appear.
    // (Browser-side functions see `document` through globalThis: the tests compile without DOM types.)
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelector('[data-verdict-count="failed"]')?.textContent === '1', undefined, { timeout: 15_000 });
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('#receipts tbody tr[data-verdict]').length >= 4, undefined, { timeout: 15_000 });
    await page.waitForSelector('#errors li[data-error-kind="request"]', { timeout: 15_000 });

    const status = (await (await fetch(`${h.origin}/status`, { headers: { 'x-tresor-local-token': TOKEN } })).json()) as {
      upstreams: { attestation: { identities: { measurement: string; tag: string; bundleVersion: number; expiresAt: string }[] } }[];
    };
    const id = status.upstreams[0]?.attestation.identities[0];
    expect(id).toBeDefined();
    const card = page.locator('[data-upstream="tresor"]');
    await expect.poll(() => card.locator('h3').textContent()).toContain('ready');
    expect(await card.locator('[data-field="measurement"]').first().textContent()).toBe(id?.measurement);
    expect(await card.locator('[data-field="tag"]').first().textContent()).toBe(id?.tag);
    expect(await card.locator('[data-field="bundle"]').first().textContent()).toContain(`v${id?.bundleVersion}`);
    expect(await card.locator('[data-field="expires"]').first().textContent()).toMatch(new RegExp(`^${id?.expiresAt.replace(/[.]/g, '\\.')} \\(in \\d+ (s|min)\\)$`));
    // How far the pin is proven, and the operator's test roots, each on a line of its own.
    expect(await card.locator('[data-field="proof"]').first().textContent()).toBe('nonce-bound; channel: bound');
    expect(await card.locator('[data-field="test-roots"]').textContent()).toBe(`test roots trusted besides the vendors' (attestation.test_roots_file): ${join(h.dir, 'test-roots.pem')}`);
    expect(await page.textContent('[data-verdict-count="verified"]')).toBe('2');
    expect(await page.textContent('[data-verdict-count="opted_out"]')).toBe('1');
    expect(await page.textContent('[data-verdict-count="pending"]')).toBe('0');

    // Newest first, from the audit log. (A receipt is recorded when its fetch and check end, not in
    // the order of the completions: the fetches run side by side, and one that met a 404 is tried again.)
    const seqs = (await page.locator('#receipts tbody tr[data-seq]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-seq')))).map(Number);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    expect(seqs.length).toBe(4);
    const failedRow = page.locator('#receipts tbody tr[data-verdict="failed"]');
    expect(await failedRow.count()).toBe(1);
    expect(await failedRow.textContent()).toContain(failedId);
    expect(await failedRow.textContent()).toMatch(/ERR_[A-Z_]+/);
    expect(await page.textContent('#errors')).toContain('ERR_REQUEST_TOO_LARGE');
    // Every check that was not pass is shown with its reason: the failing one, and the skipped,
    // informational ones a verified receipt rests on.
    expect(await failedRow.locator('[data-check="signature"]').textContent()).toMatch(/^signature: fail ERR_RECEIPT_SIGNATURE/);
    const verifiedRow = page.locator('#receipts tbody tr[data-verdict="verified"]').first();
    expect(await verifiedRow.locator('[data-check="receipt_signature"]').textContent()).toMatch(/^receipt_signature: skip \(recorded, not checked/);
    expect(await verifiedRow.locator('[data-check="inference_attestation"]').textContent()).toBe('inference_attestation: skip (absent)');
    expect(await verifiedRow.locator('[data-check]').count()).toBeGreaterThan(0);

    // Filter by verdict.
    await page.selectOption('#verdict-filter', 'verified');
    await page.waitForFunction(() => [...(globalThis as unknown as Dom).document.querySelectorAll('#receipts tbody tr')].every((r) => r.dataset.verdict === 'verified'));
    const verifiedRows = await page.$$eval('#receipts tbody tr', (rows) => rows.map((r) => r.textContent ?? ''));
    expect(verifiedRows).toHaveLength(2);
    for (const rid of ids) expect(verifiedRows.join('\n')).toContain(rid);

    const artifacts = join(ROOT, 'test-artifacts');
    await mkdir(artifacts, { recursive: true });
    await page.selectOption('#verdict-filter', '');
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('#receipts tbody tr[data-verdict]').length >= 4);
    await page.screenshot({ path: join(artifacts, 'status-page.png'), fullPage: true });

    // No secret and no body on the page; everything came from the daemon itself; the CSP held.
    const html = await page.content();
    for (const s of [REAL_KEY, TOKEN, PROMPT]) expect(html).not.toContain(s);
    for (const u of requested) expect(new URL(u).origin).toBe(h.origin);
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  test('without the token the page is refused (401 with a Basic challenge, so a browser prompts)', async () => {
    const context = await browser.newContext();
    const res = await context.request.get(`${h.origin}/`);
    expect(res.status()).toBe(401);
    expect(res.headers()['www-authenticate']).toMatch(/^Basic realm="tresor-attest"/);
    expect(await res.text()).not.toContain('<html');
    // Headless Chromium, asked for credentials it does not have, refuses the navigation.
    await expect((await context.newPage()).goto(`${h.origin}/`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    await context.close();
  });
});
