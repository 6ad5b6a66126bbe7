import OpenAI from 'openai';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createNearDeployment, type NearDeployment } from '../../src/sim/mint/near.js';
import { readAuditRecords } from '../helpers/audit.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { startTestPccs } from '../helpers/pccs.js';
import { mintTdxCollateral } from '../../src/sim/mint/tdx-collateral.js';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';

const MODEL = 'eu/tresor/gpt-oss-120b';

type Verdict = { status: string; verdict: string; code?: string; receipt_id?: string; kid?: string; checks?: { name: string; result: string; code?: string; detail?: string }[] } & Record<string, unknown>;
const ask = (h: Harness, content = 'x') =>
  fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }] }) });

describe('profile near end to end through the openai SDK', () => {
  let h: Harness;
  let n: NearDeployment;
  let client: OpenAI;
  beforeAll(async () => {
    n = await createNearDeployment();
    h = await startHarness({ near: n });
    client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    for (const k of Object.keys(n.faults)) delete (n.faults as Record<string, unknown>)[k];
  });

  const verdictOf = async (reqId: string) => (await (await fetch(`${h.origin}/receipts/${reqId}?wait=20`)).json()) as Verdict;
  const check = (v: Verdict, name: string) => v.checks?.find((c) => c.name === name);

  test('JSON and stream: TDX-attested gateway pinned, chat signature by the attested model node over our bytes', async () => {
    const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi near' }] }).withResponse();
    expect(data.choices[0]?.message.content).toContain('hi near');
    expect(response.headers.get('x-tresor-attestation')).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(response.headers.get('x-tresor-attestation-kind')).toBe('tdx');
    const v = await verdictOf(response.headers.get('x-request-id') as string);
    expect(v, JSON.stringify(v)).toMatchObject({ status: 'done', verdict: 'verified', receipt_id: data.id });
    for (const name of ['signature', 'attested_signer', 'request_body_hash', 'response_body_hash']) expect(check(v, name), name).toMatchObject({ result: 'pass' });
    // The connection's report names the gateway only; the model node was looked up by model and verified.
    expect(check(v, 'attested_signer')?.detail).toMatch(new RegExp(`^model ${data.model}, MRTD ${n.mrtd}$`));

    const { data: stream, response: sres } = await client.chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'stream near' }] }).withResponse();
    let text = '';
    let chatId: string | undefined;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      chatId ??= c.id;
    }
    expect(text).toContain('stream near');
    expect(await verdictOf(sres.headers.get('x-request-id') as string)).toMatchObject({ verdict: 'verified', receipt_id: chatId });
  });

  test('the audit record names the format, the signer and the attested gateway', async () => {
    const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'audit me' }] }).withResponse();
    await verdictOf(response.headers.get('x-request-id') as string);
    const records = await readAuditRecords(join(h.dir, 'state'));
    const rec = records.find((r) => r.receipt_id === data.id) as Record<string, unknown>;
    expect(rec).toMatchObject({ verdict: 'verified', receipt_format: 'near', receipt_type: 'near/ecdsa', kid: n.modelAddress, route_served: data.model });
    expect(rec.attestation).toMatchObject({ kind: 'tdx', measurement: n.mrtd, tag: n.gatewayAddress });
  });

  const faults: [keyof NearDeployment['faults'], string, string][] = [
    ['unattestedSigner', 'attested_signer', 'ERR_NEAR_ATTESTED_ADDRESS'],
    ['requestHashMismatch', 'request_body_hash', 'ERR_NEAR_REQUEST_HASH'],
    ['responseHashMismatch', 'response_body_hash', 'ERR_NEAR_RESPONSE_HASH'],
  ];
  for (const [fault, name, code] of faults) {
    test(`${fault}: failed with ${code} (check ${name})`, async () => {
      n.faults[fault] = true;
      const res = await ask(h);
      await res.arrayBuffer();
      const v = await verdictOf(res.headers.get('x-request-id') as string);
      expect(v, JSON.stringify(v)).toMatchObject({ verdict: 'failed', code });
      expect(check(v, name)).toMatchObject({ result: 'fail', code });
    });
  }
});

describe('profile near: strict mode holds the answer until the signature verifies', () => {
  test('a signature over other bytes turns a non-stream answer into a 502 naming the check', async () => {
    const n = await createNearDeployment();
    const h = await startHarness({ near: n, upstream: { receipts: { mode: 'strict' } } });
    try {
      const ok = await ask(h, 'strict');
      expect(ok.status).toBe(200);
      await ok.arrayBuffer();
      n.faults.responseHashMismatch = true;
      const bad = await ask(h, 'strict');
      expect(bad.status).toBe(502);
      expect(JSON.stringify(await bad.json())).toContain('ERR_NEAR_RESPONSE_HASH');
    } finally {
      await h.close();
    }
  });
});

describe('profile near: attestation failures refuse the upstream before any application byte', () => {
  for (const [fault, code] of [
    ['tlsUnbound', 'ERR_NEAR_TLS_UNBOUND'],
    ['wrongNonce', 'ERR_NEAR_NONCE'],
    ['wrongMeasurement', 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED'],
    ['badQuote', 'ERR_TDX_QUOTE_SIGNATURE'],
    ['rtmr3Mismatch', 'ERR_POLICY_TDX_RTMR3_REPLAY'],
  ] as const) {
    test(`${fault}: 502 ${code}, nothing forwarded`, async () => {
      const n = await createNearDeployment();
      n.faults[fault] = true;
      const h = await startHarness({ near: n });
      try {
        const res = await ask(h, 'secret');
        expect(res.status).toBe(502);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
        expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
      } finally {
        await h.close();
      }
    });
  }

  test('a compose-hash pin: the deployment\'s own hash passes, another is refused', async () => {
    const n = await createNearDeployment();
    const pinned = await startHarness({ near: n, upstream: { tdx: { allowed_compose_hashes: [n.composeHash] } } });
    try {
      const res = await ask(pinned);
      expect(res.status, await res.clone().text()).toBe(200);
      await res.arrayBuffer();
    } finally {
      await pinned.close();
    }
    const other = await startHarness({ near: n, upstream: { tdx: { allowed_compose_hashes: ['00'.repeat(32)] } } });
    try {
      const res = await ask(other);
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_POLICY_TDX_COMPOSE_HASH');
    } finally {
      await other.close();
    }
  });
  test('tdx.pccs_url: every quote\'s collateral is fetched from the PCCS before verification (one fetch for the gateway and the model node\'s shared FMSPC); stale collateral refuses the upstream', async () => {
    const n = await createNearDeployment();
    const pccs = await startTestPccs({ ...(await mintTdxCollateral(n.pki, { now: new Date() })) });
    const dir = await mkdtemp(join(tmpdir(), 'near-pccs-'));
    await writeFile(join(dir, 'ca.pem'), pccs.caPem);
    const tdx = { pccs_url: pccs.url, pccs_ca_file: join(dir, 'ca.pem') };
    try {
      const h = await startHarness({ near: n, upstream: { tdx } });
      try {
        const res = await ask(h);
        expect(res.status, await res.clone().text()).toBe(200);
        await res.arrayBuffer();
        expect(pccs.hits.filter((p) => p.startsWith('/tdx/certification/v4/tcb'))).toHaveLength(1);
      } finally {
        await h.close();
      }
      pccs.serve({ ...(await mintTdxCollateral(n.pki, { now: new Date(Date.now() - 60 * 86_400_000) })) });
      const stale = await startHarness({ near: n, upstream: { tdx } });
      try {
        const res = await ask(stale);
        expect(res.status).toBe(502);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_TDX_COLLATERAL_STALE');
      } finally {
        await stale.close();
      }
    } finally {
      await pccs.close();
    }
  });
});
