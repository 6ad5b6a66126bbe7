import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, test } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { ReceiptPipeline } from '../../src/receipts/pipeline.js';
import { Semaphore, TokenBucket } from '../../src/receipts/rate.js';
import { receiptUpstream } from '../helpers/jobs.js';
import { LogSink } from '../helpers/log-sink.js';

const JOBS = 2_000;

/** The attestation summary an exchange's record carries (shaped like auditAttestation's for an SNP pin). */
const attestation = () => ({ kind: 'snp', measurement: 'ab'.repeat(48), tag: 'cd'.repeat(32), tls_spki_sha256: 'ef'.repeat(32), bundle_version: 17, freshness: 'fresh', channel: 'tls', test_roots: false, evidence: '01'.repeat(32) });

/** One streamed completion through the pipeline's observer, ended (its job journaled) but its receipt not yet fetched. */
async function exchange(p: ReceiptPipeline, n: number): Promise<void> {
  const o = p.observe({ upstream: 'tresor', requestId: `req-${n}-${'x'.repeat(20)}`, method: 'POST', path: '/v1/chat/completions?stream=true', tresorHeaders: { 'x-tresor-route': 'auto' }, startedAt: new Date(), authorization: undefined });
  o?.onResponseStart?.(200, { 'content-type': 'text/event-stream', 'x-tresor-receipt-id': `rcpt-${n}` });
  for (let i = 0; i < 5; i++) o?.onResponseChunk?.(Buffer.from(`data: {"id":"c${n}","choices":[{"delta":{"content":"token ${i}"}}]}\n\n`));
  await o?.onEnd?.({ ok: true, status: 200, requestBytes: 100, responseBytes: 500 });
}

describe('ReceiptPipeline: jobs waiting for a fetch slot', () => {
  // At 1,000 streams their jobs end together and wait for the upstream's 16 fetch slots long enough
  // to be promoted to V8's old space: what each holds while it waits is memory per stream.
  test(`${JOBS} journaled jobs waiting for fetch slots hold under 3 KB of V8 heap each (3.5 KB before: a chain of promises and closures per job), and all are then fetched and recorded`, async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let fetched = 0;
    const p = await ReceiptPipeline.open({
      stateDir: undefined,
      audit: { dir: '/nonexistent', maxFileBytes: 1 << 20, retentionFiles: 1, archiveReceipts: false },
      clock: () => new Date(),
      logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
      upstreams: [
        receiptUpstream({
          concurrency: new Semaphore(16),
          bucket: new TokenBucket(1e6, 1e6, () => new Date(), async () => undefined),
          maxPending: JOBS * 2,
          fetchPolicy: { notFoundGraceMs: 0, deadlineMs: 0 },
          attestation,
          get: async () => {
            fetched++;
            await gate;
            return { status: 404, headers: {}, body: Buffer.from('{}') };
          },
        }),
      ],
    });
    await exchange(p, -1); // warm the code paths before measuring
    gc();
    const before = v8.getHeapStatistics().used_heap_size;
    for (let n = 0; n < JOBS; n++) await exchange(p, n);
    await new Promise((r) => setTimeout(r, 20));
    gc();
    const perJob = (v8.getHeapStatistics().used_heap_size - before) / JOBS;
    expect(p.pending).toBe(JOBS + 1);
    release();
    await expect.poll(() => p.pending, { timeout: 20_000 }).toBe(0);
    expect(p.counters.recorded).toBe(JOBS + 1);
    expect(fetched).toBeGreaterThanOrEqual(JOBS + 1);
    await p.close();
    expect(perJob).toBeLessThan(3072);
  }, 60_000);
});
