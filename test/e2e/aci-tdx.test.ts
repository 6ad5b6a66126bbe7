import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createAciDeployment, type AciDeployment, type AciFaults } from '../../src/sim/mint/aci.js';
import { mintTdxCollateral } from '../../src/sim/mint/tdx-collateral.js';
import { startTestPccs } from '../helpers/pccs.js';
import type { TdxTestPki } from '../../src/sim/mint/tdx.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const MODEL = 'eu/tresor/gpt-oss-120b';

type Status = { upstreams: { attestation: { ready: boolean; lastError?: { code: string }; identities: { kind: string; measurement: string }[] } }[] };
const statusOf = async (h: Harness) => ((await (await fetch(`${h.origin}/status`)).json()) as Status).upstreams[0]?.attestation;
const verdictOf = async (h: Harness, reqId: string) => (await (await fetch(`${h.origin}/receipts/${reqId}?wait=20`)).json()) as Record<string, unknown>;

/** The pins a test may configure, from the deployment's own values. */
const pins = (aci: AciDeployment) => ({
  compose: { allowed_compose_hashes: [aci.composeHash as string] },
  rtmrs: { allowed_rtmrs: [{ rtmr0: '00'.repeat(48) }, { ...aci.rtmrs }] },
});

describe('profile aci with TDX evidence end to end through the openai SDK', () => {
  let aci: AciDeployment;
  beforeAll(async () => {
    aci = await createAciDeployment({ tee: 'tdx' });
  });

  test('the deployment serves a TDX quote, a dstack event log and its app compose', async () => {
    expect(aci.tee).toBe('tdx');
    expect(aci.measurement).toBe(aci.mrtd);
    const report = aci.attestation('ab'.repeat(32), 'cd'.repeat(32)) as { attestation: { tee_type: string; evidence: Record<string, unknown> } };
    expect(report.attestation.tee_type).toBe('tdx');
    expect(Object.keys(report.attestation.evidence).sort()).toEqual(['app_compose', 'event_log', 'quote']);
    expect(report.attestation.evidence.quote).toMatch(/^([0-9a-f]{2})+$/);
  });

  for (const [name, tdx] of [
    ['no RTMR or compose-hash pin', undefined],
    ['allowed_rtmrs and allowed_compose_hashes configured and matched', 'both'],
  ] as const) {
    describe(name, () => {
      let h: Harness;
      let client: OpenAI;
      beforeAll(async () => {
        h = await startHarness({ aci, ...(tdx ? { upstream: { tdx: { ...pins(aci).compose, ...pins(aci).rtmrs } } } : {}) });
        client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
      });
      afterAll(() => h.close());

      test('JSON and stream: MRTD allowed, the keyset attested over the connection, every receipt verified against the bytes', async () => {
        const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi tdx' }] }).withResponse();
        expect(data.choices[0]?.message.content).toContain('hi tdx');
        expect(response.headers.get('x-tresor-attestation')).toBe('verified; nonce-bound; channel: bound; test roots');
        expect(response.headers.get('x-tresor-attestation-kind')).toBe('tdx');
        expect(response.headers.get('x-tresor-measurement')).toBe(aci.mrtd);
        expect(response.headers.get('x-tresor-workload-tag')).toMatch(/^sha256:[0-9a-f]{64}$/);
        const receiptId = response.headers.get('x-receipt-id') as string;
        const v1 = await verdictOf(h, response.headers.get('x-request-id') as string);
        expect(v1, JSON.stringify(v1)).toMatchObject({ status: 'done', verdict: 'verified', receipt_id: receiptId });

        const { data: stream, response: sres } = await client.chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'stream tdx' }] }).withResponse();
        let text = '';
        for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
        expect(text).toContain('stream tdx');
        expect(await verdictOf(h, sres.headers.get('x-request-id') as string)).toMatchObject({ verdict: 'verified' });

        const status = await statusOf(h);
        expect(status?.ready).toBe(true);
        expect(status?.identities[0]).toMatchObject({ kind: 'tdx', measurement: aci.mrtd });
        // The TEE summary kept with the pin is visible to operators.
        expect(JSON.stringify(status?.identities[0])).toContain('"tcb_status":"unknown"');
      });
    });
  }
});

describe('profile aci with TDX evidence: each failed check refuses the router before any application byte', () => {
  type Case = { fault?: keyof AciFaults; tdx?: (aci: AciDeployment) => Record<string, unknown>; attestation?: Record<string, unknown>; code: string };
  const cases: Record<string, Case> = {
    'a debug TD': { fault: 'debugTd', code: 'ERR_POLICY_TDX_DEBUG' },
    'a bad quote signature': { fault: 'badQuoteSignature', code: 'ERR_TDX_QUOTE_SIGNATURE' },
    'a QE report not binding the attestation key': { fault: 'badQeBinding', code: 'ERR_TDX_QE_BINDING' },
    'RTMR3 not the replay of the event log': { fault: 'rtmr3Mismatch', code: 'ERR_POLICY_TDX_RTMR3_REPLAY' },
    'app_compose not the logged compose hash': { fault: 'appComposeMismatch', code: 'ERR_POLICY_TDX_APP_COMPOSE' },
    'a compose hash other than the pinned one': { fault: 'otherComposeHash', tdx: (a) => pins(a).compose, code: 'ERR_POLICY_TDX_COMPOSE_HASH' },
    'an MRTD not in aci.allowed_measurements': { fault: 'wrongMeasurement', code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' },
    'RTMR0-2 in no allowed_rtmrs set': { fault: 'wrongRtmrs', tdx: (a) => pins(a).rtmrs, code: 'ERR_POLICY_TDX_MEASUREMENT' },
    'no event log while a compose hash is pinned': { fault: 'noEventLog', tdx: (a) => pins(a).compose, code: 'ERR_POLICY_TDX_COMPOSE_EVENT' },
    'no test roots (the pinned Intel root only)': { attestation: { test_roots_file: null }, code: 'ERR_CHAIN_UNTRUSTED' },
  };
  for (const [name, c] of Object.entries(cases)) {
    test(`${name}: 502 ${c.code}, visible in /status and /readyz, nothing forwarded`, async () => {
      const aci = await createAciDeployment({ tee: 'tdx' });
      if (c.fault) aci.faults[c.fault] = true;
      const h = await startHarness({ aci, ...(c.tdx ? { upstream: { tdx: c.tdx(aci) } } : {}), ...(c.attestation ? { attestation: c.attestation } : {}) });
      try {
        const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'secret' }] }) });
        expect(res.status).toBe(502);
        expect(await res.json()).toMatchObject({ error: { type: 'attestation_error', code: c.code } });
        expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
        expect(h.sim.requestCounts.get('/v1/aci/attestation') ?? 0).toBeGreaterThan(0);
        const status = await statusOf(h);
        expect(status).toMatchObject({ ready: false, lastError: { code: c.code }, identities: [] });
        const ready = await fetch(`${h.origin}/readyz`);
        expect(ready.status).toBe(503);
        expect(await ready.text()).toContain(c.code);
      } finally {
        await h.close();
      }
    });
  }

  test('without the pins, the same other compose hash, other RTMR0-2 and missing event log are accepted (the pins are what refuse them)', async () => {
    const aci = await createAciDeployment({ tee: 'tdx' });
    Object.assign(aci.faults, { otherComposeHash: true, wrongRtmrs: true } satisfies AciFaults);
    const h = await startHarness({ aci });
    try {
      const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
      const { response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }).withResponse();
      expect(response.headers.get('x-tresor-attestation')).toBe('verified; nonce-bound; channel: bound; test roots');
    } finally {
      await h.close();
    }
    const bare = await createAciDeployment({ tee: 'tdx' });
    bare.faults.noEventLog = true;
    const h2 = await startHarness({ aci: bare });
    try {
      const res = await fetch(`${h2.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }) });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-tresor-attestation')).toBe('verified; nonce-bound; channel: bound; test roots');
      await res.text();
    } finally {
      await h2.close();
    }
  });
});

describe('profile aci with TDX evidence and Intel DCAP collateral (tdx.collateral_file)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tresor-tdx-collateral-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const withCollateral = async (name: string, o: { now: Date; editTcbInfo?: (i: Record<string, unknown>) => void }) => {
    const aci = await createAciDeployment({ tee: 'tdx' });
    const file = join(dir, name);
    await writeFile(file, JSON.stringify(await mintTdxCollateral(aci.tdxPki as TdxTestPki, o)));
    return { aci, file };
  };
  const chat = (h: Harness) => fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'tcb' }] }) });

  test('current collateral: the TCB status is evaluated (UpToDate) and shown in /status', async () => {
    const { aci, file } = await withCollateral('fresh.json', { now: new Date() });
    const h = await startHarness({ aci, upstream: { tdx: { collateral_file: file } } });
    try {
      const res = await chat(h);
      expect(res.status).toBe(200);
      await res.text();
      const status = await statusOf(h);
      expect(JSON.stringify(status?.identities[0])).toContain('"tcb_status":"UpToDate"');
    } finally {
      await h.close();
    }
  });
  for (const [name, o, tdx, code] of [
    ['stale collateral', { now: new Date(Date.now() - 60 * 86_400_000) }, {}, 'ERR_TDX_COLLATERAL_STALE'],
    ['an OutOfDate platform', { now: new Date(), editTcbInfo: (i: Record<string, unknown>) => void ((i.tcbLevels as { tcb: { pcesvn: number } }[])[0] as { tcb: { pcesvn: number } }).tcb.pcesvn++ }, {}, 'ERR_POLICY_TDX_TCB_STATUS'],
  ] as const) {
    test(`${name}: 502 ${code}, nothing forwarded`, async () => {
      const { aci, file } = await withCollateral(`${code}.json`, o);
      const h = await startHarness({ aci, upstream: { tdx: { collateral_file: file, ...tdx } } });
      try {
        const res = await chat(h);
        expect(res.status).toBe(502);
        expect(await res.json()).toMatchObject({ error: { type: 'attestation_error', code } });
        expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
      } finally {
        await h.close();
      }
    });
  }
  test('tdx.collateral_dir: the file named by the quote\'s FMSPC is used; without one the router is refused', async () => {
    const { aci, file } = await withCollateral('by-fmspc.json', { now: new Date() });
    const cache = await mkdtemp(join(dir, 'cache-'));
    await writeFile(join(cache, `${(aci.tdxPki as TdxTestPki).platform.fmspc}.json`), await readFile(file));
    const h = await startHarness({ aci, upstream: { tdx: { collateral_dir: cache } } });
    try {
      const res = await chat(h);
      expect(res.status).toBe(200);
      await res.text();
      expect(JSON.stringify((await statusOf(h))?.identities[0])).toContain('"tcb_status":"UpToDate"');
    } finally {
      await h.close();
    }
    const empty = await mkdtemp(join(dir, 'empty-'));
    const h2 = await startHarness({ aci, upstream: { tdx: { collateral_dir: empty } } });
    try {
      const res = await chat(h2);
      expect(res.status).toBe(502);
      expect(await res.json()).toMatchObject({ error: { type: 'attestation_error', code: 'ERR_TDX_COLLATERAL_UNAVAILABLE' } });
    } finally {
      await h2.close();
    }
  });
  test('an OutOfDate platform is accepted when tdx.allowed_tcb_statuses lists OutOfDate', async () => {
    const { aci, file } = await withCollateral('allowed.json', { now: new Date(), editTcbInfo: (i) => void ((i.tcbLevels as { tcb: { pcesvn: number } }[])[0] as { tcb: { pcesvn: number } }).tcb.pcesvn++ });
    const h = await startHarness({ aci, upstream: { tdx: { collateral_file: file, allowed_tcb_statuses: ['UpToDate', 'OutOfDate'] } } });
    try {
      const res = await chat(h);
      expect(res.status).toBe(200);
      await res.text();
      expect(JSON.stringify((await statusOf(h))?.identities[0])).toContain('"advisory_ids":["INTEL-SA-00106","INTEL-SA-00837"]');
    } finally {
      await h.close();
    }
  });
  test('tdx.pccs_url: the simulator\'s collateral fetched from a PCCS over https (pccs_ca_file), cached under the state dir; PCCS down with nothing cached: 502 ERR_TDX_COLLATERAL_FETCH', async () => {
    const { aci, file } = await withCollateral('pccs.json', { now: new Date() });
    const pccs = await startTestPccs(JSON.parse(await readFile(file, 'utf8')) as Record<string, string>);
    const caFile = join(dir, 'pccs-ca.pem');
    await writeFile(caFile, pccs.caPem);
    try {
      const h = await startHarness({ aci, upstream: { tdx: { pccs_url: pccs.url, pccs_ca_file: caFile } } });
      try {
        const res = await chat(h);
        expect(res.status).toBe(200);
        await res.text();
        expect(JSON.stringify((await statusOf(h))?.identities[0])).toContain('"tcb_status":"UpToDate"');
        expect(pccs.hits).toContain(`/tdx/certification/v4/tcb?fmspc=${(aci.tdxPki as TdxTestPki).platform.fmspc.toUpperCase()}`);
      } finally {
        await h.close();
      }
      pccs.fail(503);
      const h2 = await startHarness({ aci, upstream: { tdx: { pccs_url: pccs.url, pccs_ca_file: caFile } } });
      try {
        const res = await chat(h2);
        expect(res.status).toBe(502);
        expect(await res.json()).toMatchObject({ error: { type: 'attestation_error', code: 'ERR_TDX_COLLATERAL_FETCH' } });
        expect(h2.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
      } finally {
        await h2.close();
      }
    } finally {
      await pccs.close();
    }
  });
});
