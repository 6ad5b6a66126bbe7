import { afterEach, describe, expect, test } from 'vitest';
import { VERDICT_HEADER_FAMILIES, verdictHeaderFamily } from '../../src/proxy/headers.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/**
 * What a hostile (or confused) router claims in its response headers. Each forged value is a marker
 * that cannot turn up by chance in what the daemon itself reports (its hex digests, its versions):
 * non-hex words, or 96/64 repeated hex digits.
 */
const VERDICTS = {
  'X-Tresor-Attestation': 'verified',
  'X-Tresor-Attestation-Kind': 'forged-kind',
  'X-Tresor-Attestation-Expires-At': 'forged-expiry',
  'X-Tresor-Measurement': 'f0'.repeat(48),
  'X-Tresor-Pcr0': 'f1'.repeat(48),
  'X-Tresor-Workload-Tag': 'f2'.repeat(32),
  'X-Tresor-Tls-Spki-Sha256': 'f3'.repeat(32),
  'X-Tresor-Trust-Bundle-Version': 'forged-bundle-version',
  'X-Tresor-Receipt-Verdict': 'verified',
};
/** Tresor's own headers that are not verdicts: the router's data, passed through. */
const PASSED = { 'x-tresor-receipt': 'router-legacy-receipt', 'x-tresor-route': 'eu/tresor/gpt-oss-120b' };

const CHAT = { model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hi' }] };

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function forging(opts: Parameters<typeof startHarness>[0]): Promise<Harness> {
  const h = await startHarness({ ...opts, sim: { faults: { forgedResponseHeaders: { ...VERDICTS, ...PASSED } } } });
  cleanups.push(() => h.close());
  return h;
}

async function chat(h: Harness, stream = false): Promise<Response> {
  const r = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, stream }) });
  expect(r.status).toBe(200);
  await r.text();
  return r;
}

/** Every X-Tresor-* header the app received. */
function tresorHeaders(r: Response): Record<string, string> {
  return Object.fromEntries([...r.headers].filter(([k]) => k.startsWith('x-tresor-')));
}

/** None of the router's distinctive verdict values reached the app; its other X-Tresor-* headers did. */
function noForgedValue(r: Response): void {
  const seen = Object.values(tresorHeaders(r)).join('\n');
  for (const [k, v] of Object.entries(VERDICTS)) if (v !== 'verified') expect(seen, k).not.toContain(v);
  expect(tresorHeaders(r)).toMatchObject(PASSED);
}

async function droppedCount(h: Harness, family: string): Promise<number> {
  const text = await (await fetch(`${h.origin}/metrics`)).text();
  const m = new RegExp(`^tresor_attest_router_verdict_headers_dropped_total\\{upstream="tresor",family="${family}"\\} (\\d+)$`, 'm').exec(text);
  return Number(m?.[1] ?? 0);
}

describe("the daemon owns its verdict headers: the router's copies never reach the app", () => {
  test('enforce: the daemon reports what it verified; a forged receipt verdict is dropped while the receipt fails', async () => {
    const h = await forging({});
    h.sim.faults.receiptTamper = true;
    const r = await chat(h);
    const s = await chat(h, true);
    for (const res of [r, s]) {
      noForgedValue(res);
      expect(tresorHeaders(res)).toMatchObject({ 'x-tresor-attestation': 'verified; nonce-bound; channel: bound; test roots', 'x-tresor-attestation-kind': 'snp', 'x-tresor-measurement': h.evidence.measurement });
      expect(res.headers.get('x-tresor-pcr0')).toBeNull();
      expect(res.headers.get('x-tresor-attestation-expires-at')).toBeNull();
      expect(res.headers.get('x-tresor-trust-bundle-version')).toBeNull();
      // Audit mode: the daemon says nothing about the receipt in headers, so nobody does.
      expect(res.headers.get('x-tresor-receipt-verdict')).toBeNull();
    }
    const id = (JSON.parse(await (await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHAT) })).text()) as { tresor: { receipt_id: string } }).tresor.receipt_id;
    const verdict = (await (await fetch(`${h.origin}/receipts/${id}?wait=10`)).json()) as { verdict: string };
    expect(verdict.verdict).toBe('failed');
    for (const family of VERDICT_HEADER_FAMILIES) expect(await droppedCount(h, family), family).toBeGreaterThanOrEqual(family === 'x-tresor-attestation' ? 9 : 3);
    expect(h.logs.text).toContain('"event":"router_verdict_header.dropped"');
  });

  test('warn, unverified: the app is told so, not what the router claims', async () => {
    const h = await forging({ evidenceFaults: { tagNotAllowed: true }, attestation: { mode: 'warn' } });
    const r = await chat(h);
    noForgedValue(r);
    expect(r.headers.get('x-tresor-attestation')).toBe('unverified-warn-mode');
    for (const name of ['x-tresor-attestation-kind', 'x-tresor-measurement', 'x-tresor-pcr0', 'x-tresor-workload-tag', 'x-tresor-tls-spki-sha256', 'x-tresor-receipt-verdict']) expect(r.headers.get(name), name).toBeNull();
    expect(await droppedCount(h, 'x-tresor-receipt-verdict')).toBe(1);
  });

  test('off: only "off", whatever the router sends', async () => {
    const h = await forging({ attestation: { mode: 'off' } });
    const r = await chat(h);
    noForgedValue(r);
    expect(Object.keys(tresorHeaders(r)).filter((k) => verdictHeaderFamily(k))).toEqual(['x-tresor-attestation']);
    expect(r.headers.get('x-tresor-attestation')).toBe('off');
    expect(await droppedCount(h, 'x-tresor-measurement')).toBe(1);
  });
});
