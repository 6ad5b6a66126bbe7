import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import type { RunningSimulator } from '../../src/sim/index.js';
import { processSetup, type ProcessSetup } from '../helpers/process-daemon.js';

let setup: ProcessSetup;
let sim: RunningSimulator;
let dir: string;
beforeAll(async () => {
  setup = await processSetup('tresor-crash-');
  ({ sim, dir } = setup);
});
afterAll(() => setup.close());

const serve = (extraEnv: Record<string, string> = {}) => setup.serve(extraEnv);

/** The receipt records (the pins' attestation records aside). */
async function records(): Promise<{ request_id: string; verdict: string; job: string }[]> {
  const auditDir = join(dir, 'state', 'audit');
  const files = (await readdir(auditDir)).filter((f) => f.startsWith('audit-')).sort();
  const out = [];
  for (const f of files) for (const l of (await readFile(join(auditDir, f), 'utf8')).split('\n')) if (l) out.push(JSON.parse(l));
  return out.filter((r) => r.type === 'receipt');
}

describe('kill -9 with receipts pending', () => {
  test('a restart finishes every journaled job: each verdict present exactly once', { timeout: 90_000 }, async () => {
    // The receipt service answers 503 until the crash: every job stays pending.
    sim.faults.statusStorm = { pathPrefix: '/v1/receipts', status: 503, count: 1_000_000 };
    const first = await serve();
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await request(`${first.base}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream: i % 2 === 0, messages: [{ role: 'user', content: `n${i}` }] }),
        });
        await res.body.text();
        expect(res.statusCode).toBe(200);
        ids.push(res.headers['x-request-id'] as string);
      }),
    );
    // Every app has seen the end of its response, so every job is on disk. Crash now.
    first.p.child.kill('SIGKILL');
    await first.p.exited;
    const before = await records().catch(() => []);
    expect(before).toEqual([]);
    sim.faults.statusStorm = null;

    const second = await serve();
    try {
      await expect.poll(async () => (await records()).length, { timeout: 40_000, interval: 200 }).toBe(20);
      // Give a duplicate every chance to appear.
      await new Promise((r) => setTimeout(r, 500));
      const after = await records();
      expect(after).toHaveLength(20);
      expect(after.map((r) => r.request_id).sort()).toEqual([...ids].sort());
      expect(after.every((r) => r.verdict === 'verified')).toBe(true);
      const report = await verifyAuditFiles([join(dir, 'state', 'audit')]);
      expect(report.breaks).toEqual([]);
      expect(second.p.stdout()).toContain('resuming receipt jobs');
    } catch (e) {
      process.stderr.write(`DEBUG second daemon:\n${second.p.stdout().slice(-4000)}\n${second.p.stderr()}\n`);
      throw e;
    } finally {
      second.p.child.kill('SIGTERM');
      await second.p.exited;
    }
  });
});
