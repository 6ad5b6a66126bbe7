import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { readAuditRecords } from '../helpers/audit.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { mountSmallFs, smallFsUnavailable, type SmallFs } from '../helpers/small-fs.js';
import { spawnBin } from '../helpers/spawn.js';

const unavailable = smallFsUnavailable();
if (unavailable) process.stdout.write(`audit-disk-full: skipped: ${unavailable}\n`);

async function chat(h: Harness, n: number): Promise<{ status: number; reqId: string; code?: string; retryAfter?: string }> {
  const res = await request(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: `completion ${n}` }] }),
  });
  const body = (await res.body.json()) as { error?: { code?: string } };
  const retryAfter = res.headers['retry-after'] as string | undefined;
  return { status: res.statusCode, reqId: res.headers['x-request-id'] as string, ...(body.error?.code ? { code: body.error.code } : {}), ...(retryAfter ? { retryAfter } : {}) };
}

const get = async (h: Harness, path: string) => {
  const res = await request(`${h.origin}${path}`);
  return { status: res.statusCode, text: await res.body.text() };
};

/** Every completion answered 200 has exactly one record; the chain verifies with the CLI. */
async function expectEachRecordedOnce(h: Harness, stateDir: string, ok: string[]): Promise<void> {
  await expect.poll(async () => (await readAuditRecords(stateDir)).filter((r) => r.type === 'receipt').length, { timeout: 20_000, interval: 200 }).toBe(ok.length);
  const ids = (await readAuditRecords(stateDir)).filter((r) => r.type === 'receipt').map((r) => r.request_id as string);
  expect([...ids].sort()).toEqual([...ok].sort());
  expect((await verifyAuditFiles([join(stateDir, 'audit')])).breaks).toEqual([]);
  const cli = spawnBin('tresor-verify', ['audit', join(stateDir, 'audit')]);
  expect(await cli.exited, cli.stdout()).toBe(0);
  expect(cli.stdout()).toMatch(/^PASS\n/);
  void h;
}

describe.skipIf(unavailable !== undefined)('a full disk under the audit trail (a real 512 KiB tmpfs)', () => {
  let fs: SmallFs;
  beforeAll(async () => {
    fs = await mountSmallFs(512);
  });
  afterAll(() => fs?.close());

  test('fail (default): new exchanges 503 audit_disk_full, /readyz and /metrics say why; once freed, the held records are written and traffic resumes by itself', { timeout: 90_000 }, async () => {
    const stateDir = join(fs.dir, 'fail');
    const h = await startHarness({ config: { state_dir: stateDir } });
    try {
      const ok: string[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await chat(h, i);
        expect(r.status).toBe(200);
        ok.push(r.reqId);
      }
      await expect.poll(async () => (await readAuditRecords(stateDir)).filter((r) => r.type === 'receipt').length, { timeout: 10_000 }).toBe(2);
      await fs.fill();
      // Completions in flight when writing starts to fail: admitted, their answers held until their job is durable.
      const inFlight = Array.from({ length: 6 }, (_, i) => chat(h, 10 + i));
      await expect.poll(async () => (await get(h, '/readyz')).status, { timeout: 15_000, interval: 100 }).toBe(503);
      expect(JSON.parse((await get(h, '/readyz')).text).reasons.join(' ')).toMatch(/ERR_AUDIT_DISK_FULL: .*ENOSPC/);
      for (let i = 0; i < 3; i++) expect(await chat(h, 20 + i)).toMatchObject({ status: 503, code: 'audit_disk_full', retryAfter: '5' });
      expect((await get(h, '/metrics')).text).toMatch(/^tresor_attest_audit_writable 0$/m);
      expect((await get(h, '/metrics')).text).toMatch(/^tresor_attest_audit_write_failures_total\{code="ERR_AUDIT_DISK_FULL"\} [1-9]/m);
      const status = JSON.parse((await get(h, '/status')).text) as { audit: { writable: boolean; failure: { code: string; errno: string } } };
      expect(status.audit).toMatchObject({ writable: false, failure: { code: 'ERR_AUDIT_DISK_FULL', errno: 'ENOSPC' } });
      expect(h.logs.records.some((r) => r.event === 'audit.unwritable' && r.level === 50 && r.code === 'ERR_AUDIT_DISK_FULL')).toBe(true);

      await fs.free();
      for (const r of await Promise.all(inFlight)) {
        // Admitted before the failure was known (200), or after it (503): never a 200 without its record.
        expect([200, 503]).toContain(r.status);
        if (r.status === 200) ok.push(r.reqId);
      }
      await expect.poll(async () => (await get(h, '/readyz')).status, { timeout: 15_000, interval: 100 }).toBe(200);
      for (let i = 0; i < 3; i++) {
        const r = await chat(h, 30 + i);
        expect(r.status).toBe(200);
        ok.push(r.reqId);
      }
      await expectEachRecordedOnce(h, stateDir, ok);
      expect(h.logs.records.some((r) => r.event === 'audit.writable')).toBe(true);
    } finally {
      await h.close();
    }
  });

  test('serve (chosen): exchanges are answered while the disk is full and counted; every record is written once it is freed', { timeout: 90_000 }, async () => {
    const stateDir = join(fs.dir, 'serve');
    const h = await startHarness({ config: { state_dir: stateDir, audit: { disk_full_action: 'serve' } } });
    try {
      const first = await chat(h, 0);
      expect(first.status).toBe(200);
      await expect.poll(async () => (await readAuditRecords(stateDir)).filter((r) => r.type === 'receipt').length, { timeout: 10_000 }).toBe(1);
      await fs.fill();
      const during = Array.from({ length: 3 }, (_, i) => chat(h, 10 + i));
      await expect.poll(async () => /^tresor_attest_audit_writable 0$/m.test((await get(h, '/metrics')).text), { timeout: 15_000, interval: 100 }).toBe(true);
      const served = await Promise.race([Promise.all([chat(h, 20), chat(h, 21)]), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('serve mode held the answers')), 10_000))]);
      expect(served.map((r) => r.status)).toEqual([200, 200]);
      expect((await get(h, '/readyz')).status).toBe(200);
      expect((await get(h, '/metrics')).text).toMatch(/^tresor_attest_audit_served_unrecorded_total [2-9]/m);
      await fs.free();
      const ok = [first, ...served, ...(await Promise.all(during))].map((r) => {
        expect(r.status).toBe(200);
        return r.reqId;
      });
      await expectEachRecordedOnce(h, stateDir, ok);
    } finally {
      await h.close();
    }
  });
});
