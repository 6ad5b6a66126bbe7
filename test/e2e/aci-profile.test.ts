import 'reflect-metadata';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createAciDeployment, type AciDeployment } from '../../src/sim/mint/aci.js';
import { mintAmdCrl } from '../helpers/amd-crl.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const MODEL = 'eu/tresor/gpt-oss-120b';

describe('profile aci end to end through the openai SDK', () => {
  let h: Harness;
  let aci: AciDeployment;
  let client: OpenAI;
  beforeAll(async () => {
    aci = await createAciDeployment();
    h = await startHarness({ aci });
    client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    for (const k of Object.keys(aci.faults)) delete (aci.faults as Record<string, unknown>)[k];
  });

  const verdictOf = async (reqId: string) => (await (await fetch(`${h.origin}/receipts/${reqId}?wait=20`)).json()) as Record<string, unknown>;

  test('JSON and stream: the keyset attested over the connection, every receipt verified against the bytes', async () => {
    const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi aci' }] }).withResponse();
    expect(data.choices[0]?.message.content).toContain('hi aci');
    expect(response.headers.get('x-tresor-attestation')).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(response.headers.get('x-tresor-measurement')).toBe(aci.measurement);
    expect(response.headers.get('x-tresor-workload-tag')).toMatch(/^sha256:[0-9a-f]{64}$/);
    const receiptId = response.headers.get('x-receipt-id') as string;
    expect(receiptId).toMatch(/^rcpt-/);
    const v1 = await verdictOf(response.headers.get('x-request-id') as string);
    expect(v1, JSON.stringify(v1)).toMatchObject({ status: 'done', verdict: 'verified', receipt_id: receiptId });

    const { data: stream, response: sres } = await client.chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'stream aci' }] }).withResponse();
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toContain('stream aci');
    expect(await verdictOf(sres.headers.get('x-request-id') as string)).toMatchObject({ verdict: 'verified' });
  });

  const faults: [keyof AciDeployment['faults'], string][] = [
    ['unknownKeyId', 'ERR_ACI_RECEIPT_KEY_UNKNOWN'],
    ['wrongKey', 'ERR_ACI_RECEIPT_SIGNATURE'],
    ['keysetDigestMismatch', 'ERR_ACI_RECEIPT_KEYSET_MISMATCH'],
    ['requestHashMismatch', 'ERR_ACI_REQUEST_HASH'],
    ['responseHashMismatch', 'ERR_ACI_RESPONSE_HASH'],
    ['missingEvent', 'ERR_ACI_EVENT_MISSING'],
  ];
  for (const [fault, code] of faults) {
    test(`a receipt with ${fault} is failed with ${code}`, async () => {
      aci.faults[fault] = true;
      const { response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }).withResponse();
      expect(await verdictOf(response.headers.get('x-request-id') as string)).toMatchObject({ verdict: 'failed', code });
    });
  }
});

describe('profile aci: attestation failures refuse the router before any application byte', () => {
  for (const [fault, code] of [
    ['wrongNonce', 'ERR_ACI_REPORT_DATA'],
    ['foreignTlsKey', 'ERR_ACI_TLS_KEY'],
    ['wrongMeasurement', 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED'],
  ] as const) {
    test(`${fault}: 502 ${code}, nothing forwarded`, async () => {
      const aci = await createAciDeployment();
      aci.faults[fault] = true;
      const h = await startHarness({ aci });
      try {
        const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'secret' }] }) });
        expect(res.status).toBe(502);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
        expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
      } finally {
        await h.close();
      }
    });
  }
});

describe('profile aci: SEV-SNP guest and platform policy from the upstream snp section', () => {
  test('snp.allow_smt false refuses the simulated host (POLICY.SMT, PLATFORM_INFO.SMT_EN): 502 ERR_POLICY_SNP_SMT, nothing forwarded', async () => {
    const aci = await createAciDeployment();
    const h = await startHarness({ aci, upstream: { snp: { allow_smt: false } } });
    try {
      const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'secret' }] }) });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'ERR_POLICY_SNP_SMT', message: expect.stringContaining('PLATFORM_INFO.SMT_EN 1') });
      expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
    } finally {
      await h.close();
    }
  });
  test('snp.crl_file: an AMD CRL (signed by the ARK) listing the ASK refuses the router: 502 ERR_CHAIN_REVOKED', async () => {
    const aci = await createAciDeployment();
    const crl = await mintAmdCrl(aci.pki, { serials: [aci.pki.ask.parsed.serialNumber] });
    const dir = await mkdtemp(join(tmpdir(), 'tresor-amd-crl-'));
    await writeFile(join(dir, 'milan.crl'), crl);
    const h = await startHarness({ aci, upstream: { snp: { crl_file: join(dir, 'milan.crl') } } });
    try {
      const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'secret' }] }) });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_CHAIN_REVOKED');
      expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
    } finally {
      await h.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
