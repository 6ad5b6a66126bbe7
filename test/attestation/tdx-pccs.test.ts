import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { pccsCollateralSource } from '../../src/attestation/tdx-pccs.js';
import { tdxCollateralSource } from '../../src/attestation/tdx.js';
import { loadConfig } from '../../src/config/load.js';
import { loadIntelSgxRoots, parseTdxQuote, quoteFmspc, verifyTdxQuote } from '../../src/evidence/tdx/index.js';
import { boundedFetcher } from '../../src/util/fetch.js';
import { startTestPccs, type CollateralJson, type TestPccs } from '../helpers/pccs.js';

const vec = (f: string) => readFileSync(new URL(`../vectors/${f}`, import.meta.url));
const QUOTE = new Uint8Array(vec('tdx-dcap-qvl-quote-2025-06.bin'));
const COLLATERAL = JSON.parse(vec('tdx-dcap-qvl-quote-2025-06.collateral.json').toString('utf8')) as CollateralJson;
const FMSPC = quoteFmspc(parseTdxQuote(QUOTE).pckChainPem);
const DAY = 86_400_000;
const T0 = new Date('2025-07-01T00:00:00Z');
// The vector's earliest nextUpdate (its PCK CRL).
const NEXT_UPDATE = new Date('2025-07-19T10:00:35Z');

let pccs: TestPccs | undefined;
afterEach(async () => {
  await pccs?.close();
  pccs = undefined;
});

function source(p: TestPccs, clock: { now: Date }, cacheDir = mkdtempSync(join(tmpdir(), 'tdx-pccs-')), errors: unknown[] = []) {
  const s = pccsCollateralSource({
    url: p.url,
    fetcher: boundedFetcher({ maxBytes: 2 * 1024 * 1024, timeoutMs: 5000, ca: p.caPem }),
    cacheDir,
    clock: () => clock.now,
    refreshMs: DAY,
    onFetchError: (fmspc, error, cachedInUse) => errors.push({ fmspc, code: (error as { code?: string }).code, cachedInUse }),
  });
  return { s, cacheDir, errors };
}
const verify = (s: (f: string) => ReturnType<typeof pccsCollateralSource> extends (f: string) => infer C ? C : never, at: Date) =>
  verifyTdxQuote(parseTdxQuote(QUOTE), { at, roots: loadIntelSgxRoots(), collateral: s(FMSPC) });

describe('TDX collateral from a PCCS (Intel PCS API v4) over https', () => {
  test('the real vector collateral, split into the four endpoints, is fetched, verifies UpToDate, and is cached in memory and on disk', async () => {
    pccs = await startTestPccs(COLLATERAL);
    const clock = { now: T0 };
    const { s, cacheDir } = source(pccs, clock);
    await s.prepare(FMSPC);
    expect([...pccs.hits].sort()).toEqual([
      '/sgx/certification/v4/pckcrl?ca=platform&encoding=der',
      '/sgx/certification/v4/rootcacrl',
      '/tdx/certification/v4/qe/identity',
      `/tdx/certification/v4/tcb?fmspc=${FMSPC.toUpperCase()}`,
    ]);
    expect(verify(s, T0).tcbStatus).toBe('UpToDate');
    // The signed texts are kept byte for byte (the signatures cover them).
    const saved = JSON.parse(readFileSync(join(cacheDir, `${FMSPC}.json`), 'utf8')) as { fetched_at: string; collateral: CollateralJson };
    expect(saved.fetched_at).toBe(T0.toISOString());
    expect(saved.collateral).toEqual(COLLATERAL);
    // Cache hit: no request, in this source or a new one over the same directory (a restart).
    await s.prepare(FMSPC);
    expect(pccs.hits).toHaveLength(4);
    const restarted = source(pccs, clock, cacheDir).s;
    await restarted.prepare(FMSPC);
    expect(pccs.hits).toHaveLength(4);
    expect(verify(restarted, T0).tcbStatus).toBe('UpToDate');
  });

  test('refreshed after refresh_seconds, and at the latest refresh_seconds before the earliest nextUpdate (injected clock)', async () => {
    pccs = await startTestPccs(COLLATERAL);
    const clock = { now: T0 };
    const { s } = source(pccs, clock);
    await s.prepare(FMSPC);
    clock.now = new Date(T0.getTime() + DAY - 1000);
    await s.prepare(FMSPC);
    expect(pccs.hits).toHaveLength(4);
    clock.now = new Date(T0.getTime() + DAY);
    await s.prepare(FMSPC);
    expect(pccs.hits).toHaveLength(8);
    // Before nextUpdate - 1 day nothing is due from that side; just past it a fetch is.
    const { s: s2 } = source(pccs, clock);
    clock.now = new Date(NEXT_UPDATE.getTime() - DAY - 3_600_000);
    await s2.prepare(FMSPC);
    clock.now = new Date(NEXT_UPDATE.getTime() - DAY - 3_000_000);
    await s2.prepare(FMSPC);
    expect(pccs.hits).toHaveLength(12);
    clock.now = new Date(NEXT_UPDATE.getTime() - DAY + 1000);
    await s2.prepare(FMSPC);
    expect(pccs.hits).toHaveLength(16);
  });

  test('single flight: twenty concurrent attestations for one FMSPC wait on one fetch', async () => {
    pccs = await startTestPccs(COLLATERAL);
    const { s } = source(pccs, { now: T0 });
    const release = pccs.hold();
    const all = Promise.all(Array.from({ length: 20 }, () => s.prepare(FMSPC)));
    // All four requests of the one fetch are at the (held) server before it answers.
    await expect.poll(() => pccs?.hits.length, { timeout: 10_000 }).toBe(4);
    release();
    await all;
    expect(pccs.hits).toHaveLength(4);
    expect(verify(s, T0).tcbStatus).toBe('UpToDate');
  });

  test('server down: nothing cached is ERR_TDX_COLLATERAL_FETCH; cached fresh collateral stays in use (the error reported); stale is ERR_TDX_COLLATERAL_STALE', async () => {
    pccs = await startTestPccs(COLLATERAL);
    pccs.fail(503);
    const clock = { now: T0 };
    const { s, cacheDir, errors } = source(pccs, clock);
    await expect(s.prepare(FMSPC)).rejects.toMatchObject({ code: 'ERR_TDX_COLLATERAL_FETCH', phase: 'fetch' });
    // The failed fetch sent its four requests at once; the first 503 rejected it while the other three
    // may still be on their way (a fixed 100 ms was not enough under load): wait for all of them.
    await expect.poll(() => pccs?.hits.length, { timeout: 10_000 }).toBe(4);
    const tried = pccs.hits.length;
    expect(() => s(FMSPC)).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_FETCH' }));
    expect(errors).toEqual([{ fmspc: FMSPC, code: 'ERR_TDX_COLLATERAL_FETCH', cachedInUse: false }]);
    // Within the retry interval the failure is answered without a new request.
    await expect(s.prepare(FMSPC)).rejects.toMatchObject({ code: 'ERR_TDX_COLLATERAL_FETCH' });
    expect(pccs.hits).toHaveLength(tried);

    pccs.fail(undefined);
    clock.now = new Date(T0.getTime() + 60_000);
    await s.prepare(FMSPC);
    expect(verify(s, clock.now).tcbStatus).toBe('UpToDate');
    await pccs.close();
    pccs = undefined;
    clock.now = new Date(T0.getTime() + 2 * DAY);
    await s.prepare(FMSPC);
    expect(errors.at(-1)).toEqual({ fmspc: FMSPC, code: 'ERR_TDX_COLLATERAL_FETCH', cachedInUse: true });
    expect(verify(s, clock.now).tcbStatus).toBe('UpToDate');
    // A restart with the server still down uses the disk cache.
    const restarted = source({ url: 'https://127.0.0.1:9', caPem: '', hits: [] } as unknown as TestPccs, clock, cacheDir).s;
    await restarted.prepare(FMSPC);
    expect(verify(restarted, clock.now).tcbStatus).toBe('UpToDate');
    // Past nextUpdate, still unreachable: the cached collateral is refused as stale, never passed.
    clock.now = new Date(NEXT_UPDATE.getTime() + 1000);
    await s.prepare(FMSPC);
    expect(() => verify(s, clock.now)).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_STALE' }));
  });

  test('an answer without its issuer-chain header, or not over a trusted certificate, is not collateral', async () => {
    pccs = await startTestPccs({ ...COLLATERAL, tcb_info_issuer_chain: '' });
    await expect(source(pccs, { now: T0 }).s.prepare(FMSPC)).rejects.toMatchObject({ code: 'ERR_TDX_COLLATERAL_FETCH' });
    pccs.serve(COLLATERAL);
    const untrusted = pccsCollateralSource({ url: pccs.url, fetcher: boundedFetcher({ maxBytes: 1 << 21, timeoutMs: 5000 }), cacheDir: mkdtempSync(join(tmpdir(), 'tdx-pccs-')), clock: () => T0, refreshMs: DAY });
    await expect(untrusted.prepare(FMSPC)).rejects.toMatchObject({ code: 'ERR_TDX_COLLATERAL_FETCH' });
  });
});

describe('tdx.pccs_url in the config', () => {
  const write = (yaml: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'tdx-pccs-cfg-'));
    writeFileSync(join(dir, 'config.yaml'), yaml);
    return join(dir, 'config.yaml');
  };
  test('plain http to a non-loopback host, or two collateral sources, are refused', async () => {
    const base = `state_dir: /tmp/x\nupstreams:\n  - name: a\n    profile: near\n    url: https://example.com\n    attestation: { mode: enforce }\n    tdx:\n`;
    await expect(loadConfig({ file: write(`${base}      pccs_url: http://pccs.example.com\n`) })).rejects.toThrow(/tdx.pccs_url: must be an https URL/);
    await expect(loadConfig({ file: write(`${base}      pccs_url: https://pccs.example.com\n      collateral_dir: /tmp\n`) })).rejects.toThrow(/set one collateral source/);
  });
  test('the daemon\'s source fetches from the configured PCCS with pccs_ca_file, into <state_dir>/tdx-collateral/<upstream>/', async () => {
    pccs = await startTestPccs(COLLATERAL);
    const dir = mkdtempSync(join(tmpdir(), 'tdx-pccs-cfg-'));
    writeFileSync(join(dir, 'pccs-ca.pem'), pccs.caPem);
    const cfg = await loadConfig({ file: write(`state_dir: ${dir}/state\nupstreams:\n  - name: near1\n    profile: near\n    url: https://example.com\n    attestation: { mode: enforce }\n    near: { allowed_measurements: ['${'0'.repeat(96)}'] }\n    tdx:\n      pccs_url: ${pccs.url}\n      pccs_ca_file: ${dir}/pccs-ca.pem\n`) });
    const u = cfg.upstreams[0]!;
    expect(u.tdx.pccs_refresh_seconds).toBe(86_400);
    const s = tdxCollateralSource(u, { stateDir: cfg.state_dir, clock: () => T0 })!;
    await s.prepare!(FMSPC);
    expect(JSON.parse(readFileSync(join(cfg.state_dir, 'tdx-collateral', 'near1', `${FMSPC}.json`), 'utf8')).collateral).toEqual(COLLATERAL);
    expect(verifyTdxQuote(parseTdxQuote(QUOTE), { at: T0, roots: loadIntelSgxRoots(), collateral: s(FMSPC) }).tcbStatus).toBe('UpToDate');
  });
});
