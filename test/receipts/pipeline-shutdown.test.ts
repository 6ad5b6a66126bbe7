import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';

const dist = (p: string) => pathToFileURL(resolve('dist', p)).href;

/**
 * In a process of its own (dist/): whether the process stays alive until `close` has finished
 * while the only job left sleeps before its fetch on an unref'd timer. If nothing kept the event
 * loop alive, the process would exit in the middle of the shutdown, before its last log line.
 */
const SCRIPT = `
import { ReceiptPipeline } from ${JSON.stringify(dist('receipts/pipeline.js'))};
import { Semaphore, TokenBucket } from ${JSON.stringify(dist('receipts/rate.js'))};
import { tresorFormat } from ${JSON.stringify(dist('receipts/format-tresor.js'))};
import { createLogger } from ${JSON.stringify(dist('log/logger.js'))};
const dir = process.argv[1];
const clock = () => new Date();
const p = await ReceiptPipeline.open({
  stateDir: dir,
  audit: { dir: dir + '/audit', maxFileBytes: 1 << 20, retentionFiles: 10, archiveReceipts: false },
  clock,
  logger: createLogger({ level: 'silent', format: 'json' }),
  upstreams: [{
    name: 'tresor', mode: 'audit', authorization: 'Bearer tr-x', idHeader: 'x-tresor-receipt-id', bodyBlock: true,
    get: () => new Promise(() => undefined),
    format: tresorFormat({ resolveKey: () => Promise.reject(new Error('not used')), hooks: {}, clock, sleep: async () => undefined, jwksDeadlineMs: 0 }),
    attestation: () => undefined, fetchPolicy: {}, firstFetchDelayMs: 5000,
    bucket: new TokenBucket(100, 100, clock, async () => undefined), concurrency: new Semaphore(4), maxPending: 100,
  }],
});
const o = p.observe({ upstream: 'tresor', requestId: 'r1', method: 'POST', path: '/v1/chat/completions', tresorHeaders: {}, startedAt: new Date() });
o.onResponseStart(200, { 'content-type': 'application/json' });
o.onResponseChunk(Buffer.from('{"tresor":{"receipt_id":"id-1"}}'));
await o.onEnd({ ok: true, status: 200, requestBytes: 0, responseBytes: 10 });
await p.close(400);
process.stdout.write('closed, pending ' + p.pending + '\\n');
`;

describe('ReceiptPipeline shutdown', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pipeline-stop-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('close() waits out its grace with only a delayed job left: the process does not exit under it, the job stays journaled', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT, dir], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('closed, pending 1\n');
    expect(r.status).toBe(0);
  });
});
