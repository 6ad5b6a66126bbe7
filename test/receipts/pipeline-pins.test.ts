import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { AttestedIdentity } from '../../src/attestation/identity.js';
import { createLogger } from '../../src/log/logger.js';
import { tresorFormat } from '../../src/receipts/format-tresor.js';
import { ReceiptPipeline, type UpstreamReceipts } from '../../src/receipts/pipeline.js';
import { Semaphore, TokenBucket } from '../../src/receipts/rate.js';
import { LogSink } from '../helpers/log-sink.js';

const clock = () => new Date();

const identity: AttestedIdentity = {
  spkiSha256: 'aa'.repeat(32),
  kind: 'snp',
  measurement: 'bb'.repeat(48),
  tag: 'cc'.repeat(32),
  bundleVersion: 17,
  verifiedAt: '2026-12-06T00:00:00.000Z',
  expiresAt: '2026-12-06T00:10:00.000Z',
  freshness: 'nonce-bound',
  channel: 'bound',
  summary: {},
  evidence: { profile: 'tresor', blobs: { envelope: Buffer.from('{"the":"envelope"}'), trust_bundle: 'a.bundle.jws' }, nonce: 'dd'.repeat(32), tlsChain: ['AAAA'], policy: {} },
};

async function lines(dir: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const f of (await readdir(dir)).filter((x) => x.startsWith('audit-') && x.endsWith('.jsonl')).sort()) {
    for (const l of (await readFile(join(dir, f), 'utf8')).split('\n')) if (l) out.push(JSON.parse(l) as Record<string, unknown>);
  }
  return out;
}

/**
 * A pipeline over `auditDir` that archives evidence and fetches nothing (every receipt is missing,
 * each path asked for goes to `fetched`): its exchanges name the pin `pinned()` returns.
 */
async function pinningPipeline(stateDir: string, auditDir: string, pinned: () => string | undefined, opts: { concurrency?: number; fetched?: string[] } = {}): Promise<ReceiptPipeline> {
  const u: UpstreamReceipts = {
    name: 'tresor',
    mode: 'audit',
    authorization: 'Bearer tr-x',
    get: async (path) => {
      opts.fetched?.push(path);
      return { status: 404, headers: {}, body: new Uint8Array() };
    },
    format: tresorFormat({ resolveKey: () => Promise.reject(new Error('not used')), keyPolicy: () => Promise.reject(new Error('not used')), hooks: {}, clock, sleep: async () => undefined, jwksDeadlineMs: 0 }),
    idHeader: 'x-tresor-receipt-id',
    bodyBlock: true,
    attestation: () => ({ tls_spki_sha256: identity.spkiSha256, evidence: pinned() }),
    fetchPolicy: { notFoundGraceMs: 0 },
    bucket: new TokenBucket(100, 100, clock, async () => undefined),
    concurrency: new Semaphore(opts.concurrency ?? 4),
    maxPending: 100,
  };
  return ReceiptPipeline.open({
    stateDir,
    audit: { dir: auditDir, maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: false, archiveEvidence: true, retryMs: 20 },
    clock,
    logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
    upstreams: [u],
  });
}

describe('ReceiptPipeline.recordPin', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pipeline-pins-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('evidence first, then the attestation record; an exchange under the pin is journaled and recorded only after it, even while the evidence cannot be written', async () => {
    const auditDir = join(dir, 'audit');
    await mkdir(auditDir, { recursive: true });
    // `evidence` is a file: every write of the archive fails (retried) until it is removed.
    await writeFile(join(auditDir, 'evidence'), 'in the way');
    let evidenceId: string | undefined;
    const p = await pinningPipeline(dir, auditDir, () => evidenceId);
    evidenceId = p.recordPin({ upstream: 'tresor', profile: 'tresor', mode: 'enforce', reason: 'connection', testRoots: false, identity });
    expect(evidenceId).toMatch(/^[0-9a-f]{64}$/);
    // The same verification seen again (another connection sharing it) is one pin.
    expect(p.recordPin({ upstream: 'tresor', profile: 'tresor', mode: 'enforce', reason: 'connection', testRoots: false, identity })).toBe(evidenceId);

    const o = p.observe({ upstream: 'tresor', requestId: 'r1', method: 'POST', path: '/v1/chat/completions', tresorHeaders: {}, startedAt: new Date() });
    o?.onResponseStart?.(200, { 'content-type': 'application/json' });
    o?.onResponseChunk?.(Buffer.from('{"tresor":{"receipt_id":"id-1"}}'));
    let ended = false;
    const end = Promise.resolve(o?.onEnd?.({ ok: true, status: 200, requestBytes: 0, responseBytes: 10 })).then(() => (ended = true));
    await expect.poll(() => p.health.failure?.source).toBe('evidence');
    await new Promise((r) => setTimeout(r, 100));
    expect(ended).toBe(false);
    expect(p.pending).toBe(0);
    expect(await lines(auditDir)).toEqual([]);

    await rm(join(auditDir, 'evidence'));
    await end;
    await expect.poll(async () => (await lines(auditDir)).length).toBe(2);
    const [pin, receipt] = await lines(auditDir);
    expect(pin).toMatchObject({ seq: 1, type: 'attestation', upstream: 'tresor', reason: 'connection', evidence: evidenceId, tls_spki_sha256: identity.spkiSha256, verified_at: identity.verifiedAt, expires_at: identity.expiresAt });
    expect(receipt).toMatchObject({ seq: 2, type: 'receipt', attestation: { evidence: evidenceId } });
    expect((await readdir(join(auditDir, 'evidence'))).sort()).toHaveLength(3);
    expect(p.health.failure).toBeUndefined();
    await p.close();
  });

  test("a receipt record under an older pin waits for a newer pin's record still being written (the key it may attest after a rotation)", async () => {
    const auditDir = join(dir, 'audit');
    let evidenceId: string | undefined;
    const p = await pinningPipeline(dir, auditDir, () => evidenceId);
    evidenceId = p.recordPin({ upstream: 'tresor', profile: 'tresor', mode: 'enforce', reason: 'startup', testRoots: false, identity });
    await expect.poll(async () => (await lines(auditDir)).length).toBe(1);
    // The router rotates its key: the next connection's pin cannot be archived yet (its evidence directory is in the way).
    await rm(join(auditDir, 'evidence'), { recursive: true });
    await writeFile(join(auditDir, 'evidence'), 'in the way');
    const rotated: AttestedIdentity = { ...identity, spkiSha256: 'ee'.repeat(32), verifiedAt: '2026-12-06T00:05:00.000Z', evidence: { ...identity.evidence!, nonce: 'ff'.repeat(32) } };
    const fresh = p.recordPin({ upstream: 'tresor', profile: 'tresor', mode: 'enforce', reason: 'connection', testRoots: false, identity: rotated });

    // An exchange that went out on the old connection ends meanwhile; its receipt is decided (missing) at once.
    const o = p.observe({ upstream: 'tresor', requestId: 'r1', method: 'POST', path: '/v1/chat/completions', tresorHeaders: {}, startedAt: new Date() });
    o?.onResponseStart?.(200, { 'content-type': 'application/json' });
    o?.onResponseChunk?.(Buffer.from('{"tresor":{"receipt_id":"id-1"}}'));
    await o?.onEnd?.({ ok: true, status: 200, requestBytes: 0, responseBytes: 10 });
    await new Promise((r) => setTimeout(r, 150));
    expect((await lines(auditDir)).map((l) => l.type)).toEqual(['attestation']);

    await rm(join(auditDir, 'evidence'));
    await expect.poll(async () => (await lines(auditDir)).length).toBe(3);
    const [, pin, receipt] = await lines(auditDir);
    expect(pin).toMatchObject({ type: 'attestation', reason: 'connection', evidence: fresh });
    expect(receipt).toMatchObject({ type: 'receipt', verdict: 'missing', attestation: { evidence: evidenceId } });
    await p.close();
  });
  test('receipts.concurrency bounds the fetches, not the commits: while records wait to be written, the next receipts are fetched', async () => {
    const auditDir = join(dir, 'audit');
    let evidenceId: string | undefined;
    const fetched: string[] = [];
    const p = await pinningPipeline(dir, auditDir, () => evidenceId, { concurrency: 1, fetched });
    evidenceId = p.recordPin({ upstream: 'tresor', profile: 'tresor', mode: 'enforce', reason: 'startup', testRoots: false, identity });
    await expect.poll(async () => (await lines(auditDir)).length).toBe(1);
    // A pin that cannot be archived yet: every receipt record waits behind it (see above).
    await rm(join(auditDir, 'evidence'), { recursive: true });
    await writeFile(join(auditDir, 'evidence'), 'in the way');
    const rotated: AttestedIdentity = { ...identity, spkiSha256: 'ee'.repeat(32), evidence: { ...identity.evidence!, nonce: 'ff'.repeat(32) } };
    p.recordPin({ upstream: 'tresor', profile: 'tresor', mode: 'enforce', reason: 'connection', testRoots: false, identity: rotated });
    for (const id of ['id-1', 'id-2', 'id-3']) {
      const o = p.observe({ upstream: 'tresor', requestId: `r-${id}`, method: 'POST', path: '/v1/chat/completions', tresorHeaders: {}, startedAt: new Date() });
      o?.onResponseStart?.(200, { 'content-type': 'application/json' });
      o?.onResponseChunk?.(Buffer.from(`{"tresor":{"receipt_id":"${id}"}}`));
      await o?.onEnd?.({ ok: true, status: 200, requestBytes: 0, responseBytes: 10 });
    }
    // One slot, and the first record cannot be written: all three receipts are fetched all the same.
    await expect.poll(() => new Set(fetched).size).toBe(3);
    expect((await lines(auditDir)).map((l) => l.type)).toEqual(['attestation']);

    await rm(join(auditDir, 'evidence'));
    await expect.poll(async () => (await lines(auditDir)).length).toBe(5);
    expect((await lines(auditDir)).map((l) => [l.type, l.receipt_id])).toEqual([
      ['attestation', undefined],
      ['attestation', undefined],
      ['receipt', 'id-1'],
      ['receipt', 'id-2'],
      ['receipt', 'id-3'],
    ]);
    await p.close();
  });
});
