import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { createLogger } from '../../src/log/logger.js';
import { ReceiptJournal } from '../../src/receipts/journal.js';
import { job, receiptUpstream } from '../helpers/jobs.js';
import { ReceiptPipeline, type UpstreamReceipts } from '../../src/receipts/pipeline.js';
import { LogSink } from '../helpers/log-sink.js';

const clock = () => new Date();

const upstream = receiptUpstream;

async function lines(dir: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const f of (await readdir(dir)).filter((x) => x.startsWith('audit-') && x.endsWith('.jsonl')).sort()) {
    for (const l of (await readFile(join(dir, f), 'utf8')).split('\n')) if (l) out.push(JSON.parse(l) as Record<string, unknown>);
  }
  return out;
}

/** One completion through the pipeline's observer, its answer carrying receipt id `id-<n>` (request id `r<n>`). */
function exchange(p: ReceiptPipeline, n: number) {
  const o = p.observe({ upstream: 'tresor', requestId: `r${n}`, method: 'POST', path: '/v1/chat/completions', tresorHeaders: {}, startedAt: new Date() });
  o?.onResponseStart?.(200, { 'content-type': 'application/json' });
  o?.onResponseChunk?.(Buffer.from(`{"tresor":{"receipt_id":"id-${n}"}}`));
  return o?.onEnd?.({ ok: true, status: 200, requestBytes: 0, responseBytes: 10 });
}

/** The pipeline reopened over a state directory that jobs were journaled in (recovery). */
function reopen(dir: string, auditDir: string): Promise<ReceiptPipeline> {
  return ReceiptPipeline.open({
    stateDir: dir,
    audit: { dir: auditDir, maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: true },
    clock,
    logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
    upstreams: [upstream()],
  });
}

describe('ReceiptPipeline recovery', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pipeline-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('a crash after the audit write but before "done": the job is not recorded twice', async () => {
    const auditDir = join(dir, 'audit');
    const { journal } = await ReceiptJournal.open(join(dir, 'receipts'));
    await journal.add(job(1, { opted_out: true }));
    await journal.add(job(2, { opted_out: true }));
    await journal.close();
    // Job 1 reached the audit log, then the process died before journaling "done".
    const log = await AuditLog.open({ dir: auditDir, clock });
    await log.append({ type: 'receipt', job: job(1).job, request_id: 'req-1', verdict: 'opted_out' });
    await log.close();

    const p = await reopen(dir, auditDir);
    await expect.poll(async () => (await lines(auditDir)).length).toBe(2);
    await new Promise((r) => setTimeout(r, 100));
    const recs = await lines(auditDir);
    expect(recs.map((r) => r.request_id)).toEqual(['req-1', 'req-2']);
    expect(p.pending).toBe(0);
    await p.close();
  });

  test('a pending job of an upstream no longer configured: recorded unverifiable (ERR_RECEIPT_UPSTREAM_GONE) and done, not fetched', async () => {
    const auditDir = join(dir, 'audit');
    const { journal } = await ReceiptJournal.open(join(dir, 'receipts'));
    await journal.add(job(1, { upstream: 'gone' }));
    await journal.close();
    const p = await reopen(dir, auditDir);
    await expect.poll(async () => (await lines(auditDir)).length).toBe(1);
    expect((await lines(auditDir))[0]).toMatchObject({ job: job(1).job, upstream: 'gone', verdict: 'unverifiable', code: 'ERR_RECEIPT_UPSTREAM_GONE' });
    await expect.poll(() => p.pending).toBe(0);
    await p.close();
    const reopened = await ReceiptJournal.open(join(dir, 'receipts'));
    expect(reopened.pending).toEqual([]);
    await reopened.journal.close();
  });

  test('a torn or malformed audit tail that names a pending job: moved aside, logged at warn with its bytes, the job re-run (not counted done)', async () => {
    const auditDir = join(dir, 'audit');
    const { journal } = await ReceiptJournal.open(join(dir, 'receipts'));
    await journal.add(job(1, { opted_out: true }));
    await journal.add(job(2, { opted_out: true }));
    await journal.add(job(3, { opted_out: true }));
    await journal.close();
    const log = await AuditLog.open({ dir: auditDir, clock });
    await log.append({ type: 'receipt', job: job(1).job, request_id: 'req-1', verdict: 'opted_out' });
    await log.close();
    const file = join(auditDir, (await readdir(auditDir)).find((f) => f.startsWith('audit-')) as string);
    // A complete line that is no record (names job 2), then a partial one (names job 3).
    const malformed = `{"seq":2,"type":"receipt","job":"${job(2).job}","verd\n`;
    const torn = `{"seq":3,"type":"receipt","job":"${job(3).job}"`;
    await appendFile(file, malformed + torn);
    const sink = new LogSink();
    const p = await ReceiptPipeline.open({
      stateDir: dir,
      audit: { dir: auditDir, maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: true },
      clock,
      logger: createLogger({ level: 'info', format: 'json', destination: sink }),
      upstreams: [upstream()],
    });
    await expect.poll(async () => (await lines(auditDir)).length).toBe(3);
    await p.close();
    expect((await lines(auditDir)).map((r) => r.request_id).sort()).toEqual(['req-1', 'req-2', 'req-3']);
    const warn = sink.records.find((r) => r.event === 'audit.tail_moved_aside');
    expect(warn).toMatchObject({ level: 40, bytes: Buffer.byteLength(malformed + torn) });
    expect(await readFile(`${file}.torn`, 'utf8')).toBe(malformed + torn);
  });

  test('the audit and journal directories removed after a record is durable but before its journal "done": the job is never run again, in this run or the next', async () => {
    const auditDir = join(dir, 'audit');
    const options = {
      stateDir: dir,
      audit: { dir: auditDir, maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: true },
      clock,
      logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
      upstreams: [upstream({ get: async () => ({ status: 404, headers: {}, body: new Uint8Array() }), fetchPolicy: { notFoundGraceMs: 0 } })],
    };
    const p = await ReceiptPipeline.open(options);
    const done = ReceiptJournal.prototype.done;
    const removed = vi.spyOn(ReceiptJournal.prototype, 'done').mockImplementationOnce(async function (this: ReceiptJournal, id: string) {
      expect((await lines(auditDir)).map((r) => r.request_id)).toEqual(['r1']);
      await rm(auditDir, { recursive: true });
      await rm(join(dir, 'receipts'), { recursive: true });
      return done.call(this, id);
    });
    try {
      await exchange(p, 1);
      await expect.poll(() => removed.mock.settledResults[0]?.type, { timeout: 10_000 }).toBe('fulfilled');
      await exchange(p, 2);
      await expect.poll(async () => (await lines(auditDir).catch(() => [])).length, { timeout: 10_000 }).toBe(2);
    } finally {
      removed.mockRestore();
    }
    await p.close();
    const recs = await lines(auditDir);
    expect(recs.map((r) => r.request_id ?? r.type)).toEqual(['gap', 'r2']);
    expect(recs[0]).toMatchObject({ reason: 'files_removed', lost: { from_seq: 1, to_seq: 1 } });
    // The next start finds nothing pending: request 1 is a known loss (the gap), never a second record.
    const again = await ReceiptPipeline.open(options);
    expect(again.pending).toBe(0);
    await again.close();
    expect((await lines(auditDir)).map((r) => r.request_id ?? r.type)).toEqual(['gap', 'r2']);
  });

  test('strict mode always fails closed: with disk_full_action serve, a strict upstream still refuses while the trail is unwritable', async () => {
    const p = await ReceiptPipeline.open({
      stateDir: dir,
      audit: { dir: join(dir, 'audit'), maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: false, diskFullAction: 'serve' },
      clock,
      logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
      upstreams: [upstream({ name: 'lenient' }), upstream({ name: 'strict', mode: 'strict' })],
    });
    expect(p.refusal('strict', 'POST', '/v1/chat/completions')).toBeUndefined();
    p.health.fail('journal', Object.assign(new Error('no space'), { code: 'ENOSPC' }), 1);
    expect(p.refusal('strict', 'POST', '/v1/chat/completions')).toMatchObject({ code: 'ERR_AUDIT_DISK_FULL' });
    expect(p.refusal('strict', 'GET', '/v1/models')).toBeUndefined();
    expect(p.refusal('lenient', 'POST', '/v1/chat/completions')).toBeUndefined();
    await p.close();
  });

  test('beyond max_pending a completion is recorded as missing (ERR_RECEIPT_QUEUE_FULL), never queued', async () => {
    const auditDir = join(dir, 'audit');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const p = await ReceiptPipeline.open({
      stateDir: dir,
      audit: { dir: auditDir, maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: false },
      clock,
      logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
      // Fetches hang until released: jobs pile up.
      upstreams: [upstream({ maxPending: 2, get: async () => (await gate, { status: 404, headers: {}, body: new Uint8Array() }), fetchPolicy: { notFoundGraceMs: 0 } })],
    });
    await exchange(p, 1);
    await exchange(p, 2);
    await exchange(p, 3);
    const v3 = p.verdicts.get('r3');
    expect(v3).toMatchObject({ status: 'done', verdict: 'missing', code: 'ERR_RECEIPT_QUEUE_FULL' });
    release();
    await expect.poll(async () => (await lines(auditDir)).length).toBe(3);
    expect((await lines(auditDir)).filter((r) => r.code === 'ERR_RECEIPT_NOT_FOUND')).toHaveLength(2);
    await p.close();
  });

  for (const mode of ['audit', 'strict'] as const) {
    test(`${mode} mode: the receipt fetch starts ${mode === 'audit' ? 'fetch_delay after the exchange' : 'at once (an answer waits for it)'}`, async () => {
      const fetchedAt: number[] = [];
      const p = await ReceiptPipeline.open({
        stateDir: dir,
        audit: { dir: join(dir, 'audit'), maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: false },
        clock,
        logger: createLogger({ level: 'silent', format: 'json', destination: new LogSink() }),
        upstreams: [
          upstream({
            mode,
            firstFetchDelayMs: 300,
            get: async () => (fetchedAt.push(Date.now()), { status: 404, headers: {}, body: new Uint8Array() }),
            fetchPolicy: { notFoundGraceMs: 0 },
          }),
        ],
      });
      const o = p.observe({ upstream: 'tresor', requestId: 'r1', method: 'POST', path: '/v1/chat/completions', tresorHeaders: {}, startedAt: new Date() });
      o?.onResponseStart?.(200, { 'content-type': 'application/json' });
      o?.onResponseChunk?.(Buffer.from('{"tresor":{"receipt_id":"id-1"}}'));
      const ended = Date.now();
      await o?.onEnd?.({ ok: true, status: 200, requestBytes: 0, responseBytes: 10 });
      await expect.poll(() => fetchedAt.length).toBe(1);
      if (mode === 'audit') expect(fetchedAt[0]! - ended).toBeGreaterThanOrEqual(290);
      else expect(fetchedAt[0]! - ended).toBeLessThan(290);
      await p.close(1000);
    });
  }
});
