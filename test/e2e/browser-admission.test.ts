import http from 'node:http';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';

/** Debian's chromium (`npm run setup:browser` installs it); CHROMIUM_PATH overrides. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`browser admission test SKIPPED: no Chromium at ${CHROMIUM} (npm run setup:browser, or set CHROMIUM_PATH).`);

const CHAT = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'sent by a web page' }] });

/** The page of another site: a cross-site fetch POST (a "simple" text/plain one and a preflighted one), a read of /status, a JSON-smuggling form. */
function evilPage(daemon: string): string {
  return `<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="${daemon}/v1/chat/completions"><input name='{"model":"eu/tresor/gpt-oss-120b","messages":[{"role":"user","content":"csrf"}],"x":"' value='"}'></form>
<script>
const body = ${JSON.stringify(CHAT)};
const settle = (p) => p.then((r) => (r.type === 'opaque' ? 'opaque' : r.status), (e) => 'blocked: ' + e.name);
window.results = Promise.all([
  settle(fetch('${daemon}/v1/chat/completions', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body })),
  settle(fetch('${daemon}/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer x' }, body })),
  fetch('${daemon}/status').then((r) => r.text(), (e) => 'blocked: ' + e.name),
]);
</script></body></html>`;
}

/** A browser app the operator allowed (allowed_origins): it calls the daemon on purpose and reads the answer. */
function appPage(daemon: string): string {
  return `<!doctype html><html><body><script>
window.results = fetch('${daemon}/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer placeholder' }, body: ${JSON.stringify(CHAT)} })
  .then(async (r) => ({ status: r.status, attestation: r.headers.get('x-tresor-attestation'), content: (await r.json()).choices[0].message.content }), (e) => 'blocked: ' + e.name);
</script></body></html>`;
}

describe.skipIf(!haveChromium)('a web page cannot use the daemon (headless Chromium)', () => {
  let h: Harness;
  let browser: Browser;
  let pages: http.Server;
  let pagePort: number;
  beforeAll(async () => {
    // One server for both sites' pages; Chromium resolves every name below to 127.0.0.1.
    pages = http.createServer((req, res) => {
      const daemon = h.origin;
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(req.headers.host?.startsWith('app.example') ? appPage(daemon) : evilPage(daemon));
    });
    await new Promise<void>((r) => pages.listen(0, '127.0.0.1', r));
    pagePort = (pages.address() as AddressInfo).port;
    h = await startHarness({ upstream: { allowed_origins: [`http://app.example:${pagePort}`] } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-proxy-server', '--host-resolver-rules=MAP evil.example 127.0.0.1, MAP app.example 127.0.0.1, MAP rebind.example 127.0.0.1'],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await new Promise((r) => pages?.close(r));
  });

  const forwarded = () => h.sim.requestCounts.get('/v1/chat/completions') ?? 0;
  const refused = async (reason: string) => {
    const m = new RegExp(`^tresor_attest_requests_refused_total\\{upstream="tresor",reason="${reason}"\\} (\\d+)$`, 'm').exec(await (await fetch(`${h.origin}/metrics`)).text());
    return Number(m?.[1] ?? 0);
  };

  test('a page from another origin: cross-site fetch POSTs, a /status read and a form POST reach the daemon and are refused; the router receives nothing', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://evil.example:${pagePort}/`);
    const results = (await page.evaluate('window.results')) as unknown[];
    // The simple POST is sent (its answer is opaque to the page); the preflighted one and the read fail in the browser.
    expect(results).toEqual(['opaque', 'blocked: TypeError', 'blocked: TypeError']);
    const [form] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.request().resourceType() === 'document'),
      page.evaluate('document.getElementById("f").submit()'),
    ]);
    expect(form.status()).toBe(403);
    expect(await form.json()).toMatchObject({ error: { code: 'origin_not_allowed', type: 'invalid_request_error' } });
    // Each attempt reached the daemon and was refused there, by origin: no-cors POST, preflight, /status, form.
    expect(await refused('origin')).toBeGreaterThanOrEqual(4);
    expect(forwarded()).toBe(0);
    await context.close();
  });

  test('DNS rebinding: a page whose name now resolves to the daemon is refused (foreign Host), reads and POSTs alike', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const nav = await page.goto(`http://rebind.example:${new URL(h.origin).port}/status`);
    expect(nav?.status()).toBe(421);
    // The attacker's script, now same-origin with the daemon, tries again.
    const results = await page.evaluate(`Promise.all([
      fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(CHAT)} }).then((r) => r.status),
      fetch('/status').then((r) => r.status),
      fetch('/receipts/x').then((r) => r.status),
    ])`);
    expect(results).toEqual([421, 421, 421]);
    expect(await refused('host')).toBeGreaterThanOrEqual(4);
    expect(forwarded()).toBe(0);
    await context.close();
  });

  test('an allowed browser app calls on purpose: CORS preflight answered, the answer readable, attestation header exposed', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://app.example:${pagePort}/`);
    expect(await page.evaluate('window.results')).toMatchObject({ status: 200, attestation: 'verified; nonce-bound; channel: bound; test roots', content: expect.stringContaining('Simulated answer') as string });
    expect(forwarded()).toBe(1);
    await context.close();
  });
});
