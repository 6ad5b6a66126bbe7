import OpenAI from 'openai';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createPinaivuDeployment, type PinaivuDeployment } from '../../src/sim/mint/pinaivu.js';
import { readAuditRecords } from '../helpers/audit.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const MODEL = 'eu/tresor/gpt-oss-120b';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Verdict = { status: string; verdict: string; code?: string; receipt_id?: string; checks?: { name: string; result: string; code?: string }[] } & Record<string, unknown>;

describe('profile pinaivu end to end through the openai SDK', () => {
  let h: Harness;
  let p: PinaivuDeployment;
  let client: OpenAI;
  beforeAll(async () => {
    p = await createPinaivuDeployment();
    // A missing proof is retried for not_found_grace_seconds: keep that short here.
    h = await startHarness({ pinaivu: p, upstream: { receipts: { not_found_grace_seconds: 0.5 } } });
    client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
  });
  afterAll(() => h.close());
  beforeEach(() => {
    for (const k of Object.keys(p.faults)) delete (p.faults as Record<string, unknown>)[k];
  });

  const verdictOf = async (reqId: string) => (await (await fetch(`${h.origin}/receipts/${reqId}?wait=20`)).json()) as Verdict;
  const check = (v: Verdict, name: string) => v.checks?.find((c) => c.name === name);

  test('JSON and stream: coordinator attested, receipt checked, proof verified under the pinned key', async () => {
    const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi pinaivu' }] }).withResponse();
    expect(data.choices[0]?.message.content).toContain('hi pinaivu');
    const requestId = (data as unknown as { request_id: string }).request_id;
    expect(requestId).toMatch(UUID);
    expect(response.headers.get('x-tresor-attestation')).toBe('verified; not freshness-bound; channel: unbound; test roots');
    expect(response.headers.get('x-tresor-attestation-kind')).toBe('nitro');
    expect(response.headers.get('x-tresor-pcr0')).toBe(p.pcr0);
    expect(response.headers.get('x-tresor-workload-tag')).toBe(p.coordinatorKey);
    const v = await verdictOf(response.headers.get('x-request-id') as string);
    expect(v, JSON.stringify(v)).toMatchObject({ status: 'done', verdict: 'verified', receipt_id: requestId });
    // The documented signature is never verified: recorded unverifiable, with the reason.
    expect(check(v, 'coordinator_signature')).toMatchObject({ result: 'unverifiable', detail: 'signature scheme not public' });
    for (const name of ['request_id', 'model', 'timestamp', 'proof_signature', 'proof_coordinator_key', 'proof_request_id', 'proof_timestamp']) {
      expect(check(v, name), name).toMatchObject({ result: 'pass' });
    }

    const { data: stream, response: sres } = await client.chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'stream pinaivu' }] }).withResponse();
    let text = '';
    let streamId: string | undefined;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      streamId ??= (c as unknown as { request_id?: string }).request_id;
    }
    expect(text).toContain('stream pinaivu');
    expect(streamId).toMatch(UUID);
    expect(await verdictOf(sres.headers.get('x-request-id') as string)).toMatchObject({ verdict: 'verified', receipt_id: streamId });
  });

  test('the audit record names the format and the coordinator key; the archive keeps receipt and proof', async () => {
    const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'audit me' }] }).withResponse();
    await verdictOf(response.headers.get('x-request-id') as string);
    const records = await readAuditRecords(join(h.dir, 'state'));
    const rec = records.find((r) => r.receipt_id === (data as unknown as { request_id: string }).request_id) as Record<string, unknown>;
    expect(rec).toMatchObject({ verdict: 'verified', receipt_format: 'pinaivu', receipt_type: 'pinaivu/receipt+proof', kid: p.coordinatorKey, route_served: data.model });
    expect(rec.attestation).toMatchObject({ kind: 'nitro', measurement: p.pcr0, tag: p.coordinatorKey });
    expect(rec.receipt_jws_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  const faults: [keyof PinaivuDeployment['faults'], string, string][] = [
    ['receiptRequestIdMismatch', 'request_id', 'ERR_PINAIVU_REQUEST_ID'],
    ['receiptModelMismatch', 'model', 'ERR_PINAIVU_MODEL'],
    ['receiptStaleTimestamp', 'timestamp', 'ERR_PINAIVU_TIMESTAMP'],
    ['receiptMalformed', 'receipt', 'ERR_PINAIVU_RECEIPT_MALFORMED'],
    ['proofBadSignature', 'proof_signature', 'ERR_PINAIVU_SIGNATURE'],
    ['proofForeignKey', 'proof_coordinator_key', 'ERR_PINAIVU_COORDINATOR_KEY'],
    ['proofRequestIdMismatch', 'proof_request_id', 'ERR_PINAIVU_REQUEST_ID'],
    ['proofMalformed', 'proof', 'ERR_PINAIVU_MALFORMED'],
  ];
  for (const [fault, name, code] of faults) {
    test(`${fault}: failed with ${code} (check ${name})`, async () => {
      p.faults[fault] = true;
      const { response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }).withResponse();
      const v = await verdictOf(response.headers.get('x-request-id') as string);
      expect(v, JSON.stringify(v)).toMatchObject({ verdict: 'failed', code });
      expect(check(v, name)).toMatchObject({ result: 'fail', code });
    });
  }

  test('no proof: unverifiable (the documented signature alone never verifies)', async () => {
    p.faults.noProof = true;
    const { response } = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }).withResponse();
    const v = await verdictOf(response.headers.get('x-request-id') as string);
    expect(v, JSON.stringify(v)).toMatchObject({ verdict: 'unverifiable', code: 'ERR_PINAIVU_UNVERIFIABLE' });
    expect(check(v, 'proof')).toMatchObject({ result: 'unverifiable', code: 'ERR_RECEIPT_NOT_FOUND' });
    expect(check(v, 'coordinator_signature')).toMatchObject({ result: 'unverifiable' });
  });
});

describe('profile pinaivu: a coordinator that restarts with a new key', () => {
  test('a proof by the new key makes the daemon re-attest over its pool and pin it; an unattested key still fails', async () => {
    const p = await createPinaivuDeployment();
    const h = await startHarness({ pinaivu: p });
    const ask = async () => {
      const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'rotate' }] }) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      return (await (await fetch(`${h.origin}/receipts/${res.headers.get('x-request-id') as string}?wait=20`)).json()) as Verdict;
    };
    try {
      const first = p.coordinatorKey;
      expect(await ask()).toMatchObject({ verdict: 'verified' });
      const attestations = h.sim.requestCounts.get('/get_attestation') ?? 0;
      const second = p.rotateKey();
      expect(second).not.toBe(first);
      const v = await ask();
      expect(v, JSON.stringify(v)).toMatchObject({ verdict: 'verified' });
      expect(h.sim.requestCounts.get('/get_attestation')).toBe(attestations + 1);
      // A key no attestation ever signed: the re-attestation (rate-limited) does not help.
      p.faults.proofForeignKey = true;
      expect(await ask()).toMatchObject({ verdict: 'failed', code: 'ERR_PINAIVU_COORDINATOR_KEY' });
    } finally {
      await h.close();
    }
  });
});

describe('profile pinaivu: strict mode holds the answer until the proof verifies', () => {
  test('a forged proof turns a non-stream answer into a 502 naming the check', async () => {
    const p = await createPinaivuDeployment();
    const h = await startHarness({ pinaivu: p, upstream: { receipts: { mode: 'strict' } } });
    try {
      const ok = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'strict' }] }) });
      expect(ok.status).toBe(200);
      p.faults.proofForeignKey = true;
      const bad = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'strict' }] }) });
      expect(bad.status).toBe(502);
      expect(JSON.stringify(await bad.json())).toContain('ERR_PINAIVU_COORDINATOR_KEY');
    } finally {
      await h.close();
    }
  });
});

describe('profile pinaivu: attestation failures refuse the upstream before any application byte', () => {
  for (const [fault, code] of [
    ['wrongPcr0', 'ERR_POLICY_PCR_MISMATCH'],
    ['debugEnclave', 'ERR_POLICY_DEBUG_ENCLAVE'],
    ['foreignRoot', 'ERR_CHAIN_UNTRUSTED'],
    ['staleDocument', 'ERR_POLICY_STALE'],
    ['wrongNonce', 'ERR_POLICY_NONCE'],
    ['attestationKeyMismatch', 'ERR_PINAIVU_ATTESTATION_KEY'],
  ] as const) {
    test(`${fault}: 502 ${code}, nothing forwarded`, async () => {
      const p = await createPinaivuDeployment();
      p.faults[fault] = true;
      const h = await startHarness({ pinaivu: p });
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

  test('a coordinator that signs our nonce is accepted (the nonce checked), and the request flows', async () => {
    const p = await createPinaivuDeployment();
    p.faults.echoNonce = true;
    const h = await startHarness({ pinaivu: p });
    try {
      const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'nonce' }] }) });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-tresor-attestation')).toBe('verified; nonce-bound; channel: unbound; test roots');
      await res.arrayBuffer();
    } finally {
      await h.close();
    }
  });
});
