import { appendFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { recentReceipts } from '../../src/audit/tail.js';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});

const VERDICTS = ['verified', 'failed', 'missing', 'opted_out', 'unverifiable'];

test('recentReceipts reads the audit log backwards across chunks and rotated files: newest first, filtered, bounded, summaries only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tresor-tail-'));
  dirs.push(dir);
  const log = await AuditLog.open({ dir, clock: () => new Date(), maxFileBytes: 200_000 });
  const n = 300;
  for (let i = 0; i < n; i++) {
    await log.append({
      type: 'receipt',
      job: `job-${i}`,
      upstream: 'tresor',
      request_id: `req-${i}`,
      receipt_id: `rcpt-${i}`,
      route: '/v1/chat/completions',
      status: 200,
      verdict: VERDICTS[i % 5],
      ...(i % 5 === 1 ? { code: 'ERR_RECEIPT_SIGNATURE', detail: 'd'.repeat(1000) } : {}),
      // Long records so that lines straddle the 64 KiB read chunks.
      checks: [{ name: 'padding', result: 'pass', detail: 'x'.repeat(1500 + (i % 7) * 13) }],
      digests: { request: { computed: 'sha256:00' }, response: { computed: 'sha256:11' } },
    });
  }
  await log.close();
  expect((await readdir(dir)).filter((f) => f.startsWith('audit-')).length).toBeGreaterThan(1);

  const all = await recentReceipts(dir, { limit: 1000 });
  expect(all.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => n - i));
  expect(all[0]).toMatchObject({ request_id: `req-${n - 1}`, receipt_id: `rcpt-${n - 1}`, verdict: VERDICTS[(n - 1) % 5], route: '/v1/chat/completions', status: 200 });
  expect(Object.keys(all[0] as object)).not.toContain('checks');
  expect(Object.keys(all[0] as object)).not.toContain('digests');

  const failed = await recentReceipts(dir, { limit: 7, verdict: 'failed' });
  expect(failed).toHaveLength(7);
  expect(failed.every((r) => r.verdict === 'failed' && r.code === 'ERR_RECEIPT_SIGNATURE')).toBe(true);
  expect(failed[0]?.detail?.length).toBeLessThanOrEqual(241);
  expect(failed.map((r) => r.seq)).toEqual([...failed.map((r) => r.seq)].sort((a, b) => b - a));

  // A torn last line (a crash mid-write) and foreign lines are skipped, not fatal.
  const newest = (await readdir(dir)).filter((f) => f.startsWith('audit-')).sort().at(-1) as string;
  await appendFile(join(dir, newest), '{"seq":9999,"type":"rece');
  expect((await recentReceipts(dir, { limit: 1 }))[0]?.seq).toBe(n);
  expect(await recentReceipts(join(dir, 'absent'), { limit: 5 })).toEqual([]);
});
