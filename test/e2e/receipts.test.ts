import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { lineHash } from '../../src/audit/format.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { spawnBin } from '../helpers/spawn.js';
import { writeFile } from 'node:fs/promises';

interface AuditLine {
  seq: number;
  type: string;
  request_id: string;
  receipt_id?: string;
  verdict: string;
  code?: string;
  route: string;
  checks: { name: string; result: string }[];
  receipt_jws_sha256?: string;
}

async function auditLines(dir: string): Promise<AuditLine[]> {
  const files = (await readdir(dir)).filter((f) => /^audit-.*\.jsonl$/.test(f)).sort();
  const out: AuditLine[] = [];
  for (const f of files) for (const l of (await readFile(join(dir, f), 'utf8')).split('\n')) if (l) out.push(JSON.parse(l) as AuditLine);
  // The receipt records (the pins' attestation records are checked in audit-evidence.test.ts).
  return out.filter((r) => (r as { type?: string }).type === 'receipt');
}

async function verdict(h: Harness, id: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${h.origin}/receipts/${id}?wait=10`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('receipts end to end through the openai SDK (audit mode)', () => {
  let h: Harness;
  let client: OpenAI;
  beforeAll(async () => {
    h = await startHarness();
    client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
  });
  afterAll(() => h.close());

  test('JSON, stream and transcription: each receipt fetched, verified and recorded exactly once', async () => {
    const chat = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hello' }] });
    const chatId = (chat as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id;

    const stream = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'stream please' }], stream: true });
    let streamId: string | undefined;
    for await (const chunk of stream) streamId ??= (chunk as unknown as { tresor?: { receipt_id: string } }).tresor?.receipt_id;

    const tr = await client.audio.transcriptions.create({ file: new File([Buffer.alloc(20_000, 7)], 'a.wav', { type: 'audio/wav' }), model: 'whisper-large-v3' });
    const trId = (tr as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id;
    const text = await client.audio.transcriptions.create({ file: new File([Buffer.alloc(3000, 1)], 'b.wav', { type: 'audio/wav' }), model: 'whisper-large-v3', response_format: 'text' });
    expect(typeof text).toBe('string');

    for (const id of [chatId, streamId as string, trId]) {
      const v = await verdict(h, id);
      expect(v.status, JSON.stringify(v.body)).toBe(200);
      expect(v.body).toMatchObject({ status: 'done', verdict: 'verified', receipt_id: id });
    }
    // Models and other non-completion routes produce no record; the text transcription does (id from its header).
    await client.models.list();
    await expect.poll(async () => (await auditLines(join(h.dir, 'state', 'audit'))).length, { timeout: 10_000 }).toBe(4);
    const lines = await auditLines(join(h.dir, 'state', 'audit'));
    expect(lines.map((l) => l.verdict)).toEqual(['verified', 'verified', 'verified', 'verified']);
    expect(new Set(lines.map((l) => l.request_id)).size).toBe(4);
    for (const l of lines) {
      expect(l.checks.filter((c) => c.result === 'fail')).toEqual([]);
      expect(l.checks.find((c) => c.name === 'router_attestation')?.result).toBe('pass');
      expect(l.receipt_jws_sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    const report = await verifyAuditFiles([join(h.dir, 'state', 'audit')]);
    expect(report.breaks).toEqual([]);
    // The 4 receipt records and the attestation record of the pin they were made under.
    expect(report.records).toBe(5);
    // Never a key or a body in the log.
    const raw = (await readdir(join(h.dir, 'state', 'audit'))).filter((f) => f.startsWith('audit-'));
    for (const f of raw) {
      const t = await readFile(join(h.dir, 'state', 'audit', f), 'utf8');
      expect(t).not.toContain('tr-5e5e');
      expect(t).not.toContain('stream please');
    }
  });

  test('X-Tresor-Receipt: false: no fetch, an opted_out record', async () => {
    const before = h.sim.requestCounts.get('/v1/receipts') ?? 0;
    const res = await fetch(`${h.base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tresor-receipt': 'false' },
      body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'no receipt' }] }),
    });
    expect(res.status).toBe(200);
    const reqId = res.headers.get('x-request-id') as string;
    await res.text();
    const v = await verdict(h, reqId);
    expect(v.body).toMatchObject({ status: 'done', verdict: 'opted_out' });
    expect(h.sim.requestCounts.get('/v1/receipts') ?? 0).toBe(before);
  });

  test('tresor-verify audit --jwks-file re-verifies every archived receipt offline; a swapped archive is a break', async () => {
    const auditDir = join(h.dir, 'state', 'audit');
    const jwks = join(h.dir, 'jwks.json');
    await writeFile(jwks, JSON.stringify(h.sim.receipts.jwks(h.sim.faults)));
    const ok = spawnBin('tresor-verify', ['audit', '--jwks-file', jwks, auditDir]);
    expect(await ok.exited, ok.stdout() + ok.stderr()).toBe(0);
    expect(ok.stdout()).toMatch(/^PASS\n/);
    expect(ok.stdout()).toMatch(/Receipts: \d+ archived, \d+ verified records re-verified offline/);
    // Another router's keys: the recorded verdicts no longer hold.
    const other = join(h.dir, 'other-jwks.json');
    await writeFile(other, JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', kid: 'router-receipt-1', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] }));
    const bad = spawnBin('tresor-verify', ['audit', '--jwks-file', other, auditDir]);
    expect(await bad.exited).toBe(4);
    expect(bad.stdout()).toContain('ERR_AUDIT_VERDICT_MISMATCH');
    // An archive edited after the fact: the record's hash no longer finds its receipt.
    const archive = (await readdir(auditDir)).find((f) => f.startsWith('receipts-')) as string;
    const text = await readFile(join(auditDir, archive), 'utf8');
    await writeFile(join(auditDir, archive), text.replace(/"jws":"([A-Za-z0-9_-]+)\./, '"jws":"$1x.'));
    const edited = spawnBin('tresor-verify', ['audit', '--jwks-file', jwks, auditDir]);
    expect(await edited.exited).toBe(4);
    expect(edited.stdout()).toContain('ERR_AUDIT_RECEIPT_MISSING');
    await writeFile(join(auditDir, archive), text);
  });

  test('tresor-verify audit --jwks-file: a record flipped to verified without an archived receipt is a break, even re-chained; every check not passed is listed', async () => {
    const auditDir = join(h.dir, 'state', 'audit');
    const jwks = join(h.dir, 'jwks.json');
    await writeFile(jwks, JSON.stringify(h.sim.receipts.jwks(h.sim.faults)));
    const files = (await readdir(auditDir)).filter((f) => /^audit-.*\.jsonl$/.test(f)).sort();
    expect(files).toHaveLength(1);
    const file = join(auditDir, files[0] as string);
    const original = await readFile(file, 'utf8');
    const head = await readFile(join(auditDir, 'audit.head'), 'utf8').catch(() => undefined);
    // Someone with write access turns a record that has no receipt into a verified one and
    // recomputes the chain and the head, so the chain check alone passes.
    let prev = '0'.repeat(64);
    let flipped = 0;
    const lines = original.split('\n').filter(Boolean).map((line) => {
      const rec = JSON.parse(line) as Record<string, unknown>;
      if (rec.verdict === 'opted_out' && flipped++ === 0) {
        rec.verdict = 'verified';
        delete rec.receipt_jws_sha256;
      }
      rec.prev = prev;
      const out = JSON.stringify(rec);
      prev = lineHash(out);
      return { out, seq: rec.seq as number };
    });
    expect(flipped).toBe(1);
    try {
      await writeFile(file, lines.map((l) => l.out).join('\n') + '\n');
      await writeFile(join(auditDir, 'audit.head'), JSON.stringify({ seq: lines.at(-1)?.seq, hash: prev, file: files[0] }));
      const chainOnly = spawnBin('tresor-verify', ['audit', auditDir]);
      expect(await chainOnly.exited, chainOnly.stdout()).toBe(0);
      const r = spawnBin('tresor-verify', ['audit', '--jwks-file', jwks, auditDir]);
      expect(await r.exited, r.stdout()).toBe(4);
      expect(r.stdout()).toMatch(/^FAIL ERR_AUDIT_RECEIPT_MISSING: 1 break\(s\)/);
      expect(r.stdout()).toMatch(/break: audit-\S+:\d+ ERR_AUDIT_RECEIPT_MISSING: recorded verified, but the record names no archived receipt/);
      // The non-pass checks of the verified records are shown, with their reasons.
      expect(r.stdout()).toMatch(/Checks not passed:\n(?:  .*\n)*  inference_attestation: skip in \d+ record\(s\) \(e\.g\. absent\)/);
      expect(r.stdout()).toMatch(/  receipt_signature: skip in \d+ record\(s\) \(e\.g\. recorded, not checked/);
      const json = spawnBin('tresor-verify', ['audit', '--json', auditDir]);
      expect(await json.exited).toBe(0);
      expect((JSON.parse(json.stdout()) as { checks_not_passed: { name: string }[] }).checks_not_passed.map((c) => c.name)).toContain('receipt_key');
    } finally {
      await writeFile(file, original);
      if (head !== undefined) await writeFile(join(auditDir, 'audit.head'), head);
    }
  });

  test('the verdict endpoint: unknown ids are 404, bad ids are not routed', async () => {
    expect((await fetch(`${h.origin}/receipts/00000000-0000-0000-0000-000000000000`)).status).toBe(404);
    expect((await fetch(`${h.origin}/receipts/..%2F..%2Fetc`)).status).toBe(400); // an encoded slash: not a path the daemon guesses at
    expect((await fetch(`${h.origin}/receipts/not..an..id`)).status).toBe(404);
  });
});
