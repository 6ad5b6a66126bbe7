import { createHash, Hash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { createTresorExtractor } from '../../src/receipts/extract.js';
import { ReceiptPipeline, type UpstreamReceipts } from '../../src/receipts/pipeline.js';
import { receiptUpstream } from '../helpers/jobs.js';
import { LogSink } from '../helpers/log-sink.js';

const clock = () => new Date();

// Never fetched within a test: the verdict is not what is looked at here.
const upstream = (over: Partial<UpstreamReceipts> = {}) => receiptUpstream({ firstFetchDelayMs: 60_000, ...over });

const openPipeline = (mode: 'audit' | 'strict' = 'audit') =>
  ReceiptPipeline.open({
    stateDir: undefined,
    audit: { dir: '/nonexistent', maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: false },
    clock,
    logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
    upstreams: [upstream({ mode })],
  });

const info = (headers: Record<string, string> = {}) => ({ upstream: 'tresor', requestId: 'r1', method: 'POST', path: '/v1/chat/completions?x=1', tresorHeaders: headers, startedAt: new Date() });

const sse = Buffer.from(
  [
    { choices: [{ delta: { role: 'assistant' }, finish_reason: null }] },
    { choices: [{ delta: { content: 'hi' }, finish_reason: null }] },
    { choices: [{ delta: {}, finish_reason: 'stop' }], tresor: { receipt_id: 'rcpt-1', routed_model: 'm' } },
  ]
    .map((e) => `data: ${JSON.stringify(e)}\n\n`)
    .join('') + 'data: [DONE]\n\n',
);

/** Own properties of `o` that are functions: closures made for this one object. */
const ownFunctions = (o: object) => Object.entries(o).filter(([, v]) => typeof v === 'function').map(([k]) => k);

describe('the receipt observer of one exchange', () => {
  test('makes no closure per exchange: the per-chunk methods are on the prototype (an open stream keeps its observer and extractor)', async () => {
    const p = await openPipeline();
    const o = p.observe(info());
    expect(o).toBeDefined();
    expect(ownFunctions(o as object)).toEqual([]);
    expect(typeof o?.onResponseChunk).toBe('function');
    expect(typeof o?.onEnd).toBe('function');
    for (const kind of ['sse', 'json'] as const) expect(ownFunctions(createTresorExtractor(kind))).toEqual([]);
    await p.close();
  });

  test('an SSE answer in any chunking: every byte in the response digest, the receipt id from the finish chunk, [DONE] after it', async () => {
    const p = await openPipeline();
    for (const size of [1, 7, 64, sse.length]) {
      const o = p.observe(info());
      o?.onRequestChunk?.(Buffer.from('{"stream":true}'));
      o?.onResponseStart?.(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < sse.length; i += size) o?.onResponseChunk?.(sse.subarray(i, i + size));
      const decision = await o?.onEnd?.({ ok: true, status: 200, requestBytes: 15, responseBytes: sse.length });
      expect(decision).toEqual({ trailers: { 'x-tresor-receipt-id': 'rcpt-1' } });
    }
    expect(p.verdicts.get('rcpt-1')).toMatchObject({ status: 'pending', request_id: 'r1' });
    await p.close();
  });

  test('the journal entry: both digests over the exact bytes, the route without its query, the opt-out, and no app key when the upstream has its own', async () => {
    const p = await openPipeline();
    const o = p.observe({ ...info({ 'x-tresor-receipt': ' FALSE ' }), authorization: 'Bearer app' }) as unknown as {
      onRequestChunk(c: Uint8Array): void;
      onResponseStart(s: number, h: Record<string, string>): void;
      onResponseChunk(c: Uint8Array): void;
      toJob(o: { ok: boolean; requestBytes: number; responseBytes: number }, at: Date): Record<string, unknown>;
      hold: boolean;
    };
    // Opted out: nothing is extracted from the body, nothing held even in strict mode.
    expect(o.hold).toBe(false);
    o.onRequestChunk(Buffer.from('ab'));
    o.onRequestChunk(new Uint8Array([0x63]));
    o.onResponseStart(200, { 'content-type': 'text/event-stream' });
    o.onResponseChunk(sse.subarray(0, 10));
    o.onResponseChunk(new Uint8Array(sse.subarray(10)));
    const job = o.toJob({ ok: true, requestBytes: 3, responseBytes: sse.length }, new Date());
    expect(job).toMatchObject({
      route: '/v1/chat/completions',
      opted_out: true,
      app_key: false,
      request_sha256: createHash('sha256').update('abc').digest('hex'),
      response_sha256: createHash('sha256').update(sse).digest('hex'),
    });
    expect(job.receipt_id).toBeUndefined();
    await p.close();
  });

  test('the request digest is final at the end of the request body: an open stream holds one SHA-256 context, not two', async () => {
    const p = await openPipeline();
    const o = p.observe(info()) as unknown as Record<string, unknown> & {
      onRequestChunk(c: Uint8Array): void;
      onRequestEnd(): void;
      onResponseStart(s: number, h: Record<string, string>): void;
      onResponseChunk(c: Uint8Array): void;
      toJob(o: { ok: boolean; requestBytes: number; responseBytes: number }, at: Date): Record<string, unknown>;
    };
    const hashes = () => Object.values(o).filter((v) => v instanceof Hash).length;
    o.onRequestChunk(Buffer.from('{"stream":'));
    o.onRequestChunk(Buffer.from('true}'));
    expect(hashes()).toBe(2);
    o.onRequestEnd();
    expect(hashes()).toBe(1);
    expect(() => o.onRequestChunk(Buffer.from('x'))).toThrow('the request digest is final');
    o.onResponseStart(200, { 'content-type': 'text/event-stream' });
    o.onResponseChunk(sse);
    expect(o.toJob({ ok: true, requestBytes: 15, responseBytes: sse.length }, new Date())).toMatchObject({
      request_sha256: createHash('sha256').update('{"stream":true}').digest('hex'),
      response_sha256: createHash('sha256').update(sse).digest('hex'),
      receipt_id: 'rcpt-1',
    });
    await p.close();
  });

  test('strict mode holds the end of the answer unless the app opted out', async () => {
    const p = await openPipeline('strict');
    expect(p.observe(info())?.hold).toBe(true);
    expect(p.observe(info({ 'x-tresor-receipt': 'false' }))?.hold).toBe(false);
    await p.close();
  });
});
