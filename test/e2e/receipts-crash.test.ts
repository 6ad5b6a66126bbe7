import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { createRouterEvidence, type RouterEvidence } from '../../src/sim/mint/router.js';
import { spawnBin, waitFor, type Spawned } from '../helpers/spawn.js';

let sim: RunningSimulator;
let evidence: RouterEvidence;
let dir: string;
beforeAll(async () => {
  evidence = await createRouterEvidence();
  sim = await startSimulator({ evidence });
  dir = await mkdtemp(join(tmpdir(), 'tresor-crash-'));
  await writeFile(join(dir, 'ca.pem'), sim.caPem);
  await writeFile(join(dir, 'release-root.pub'), evidence.releaseRoot.publicPem);
});
afterAll(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

async function serve(): Promise<{ p: Spawned; base: string }> {
  const p = spawnBin('tresor-attest', ['serve', '--upstream', sim.url, '--ca-file', join(dir, 'ca.pem'), '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'state')], {
    TRESOR_API_KEY: `tr-${'2'.repeat(96)}`,
    TRESOR_ATTEST_RELEASE_ROOT_FILE: join(dir, 'release-root.pub'),
    TRESOR_ATTEST_TRUST_BUNDLE: evidence.bundleUrl,
  });
  await waitFor(p, (o) => o.includes('serving OPENAI_BASE_URL='));
  return { p, base: /serving OPENAI_BASE_URL=(http:\/\/[^"\s]+)/.exec(p.stdout())?.[1] as string };
}

async function records(): Promise<{ request_id: string; verdict: string; job: string }[]> {
  const auditDir = join(dir, 'state', 'audit');
  const files = (await readdir(auditDir)).filter((f) => f.startsWith('audit-')).sort();
  const out = [];
  for (const f of files) for (const l of (await readFile(join(auditDir, f), 'utf8')).split('\n')) if (l) out.push(JSON.parse(l));
  return out;
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
