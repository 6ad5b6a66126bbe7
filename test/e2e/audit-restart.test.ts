import { generateKeyPairSync } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { readAuditRecords } from '../helpers/audit.js';
import { startHarness } from '../helpers/harness.js';
import { processSetup, type ProcessSetup } from '../helpers/process-daemon.js';
import { spawnBin, type Spawned } from '../helpers/spawn.js';

async function chat(base: string, n: number): Promise<string> {
  const res = await request(`${base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: `restart ${n}` }] }),
  });
  await res.body.text();
  expect(res.statusCode).toBe(200);
  return res.headers['x-request-id'] as string;
}

/** Until the exchange's record is durable (its verdict is done only after the commit), not merely visible in the file. */
async function recorded(origin: string, requestId: string): Promise<void> {
  const res = await request(`${origin}/receipts/${requestId}?wait=20`);
  expect(await res.body.json()).toMatchObject({ status: 'done' });
}

describe('one writer per state dir, stale locks, and the start-up check, with the real daemon', () => {
  let setup: ProcessSetup;
  let env: Record<string, string>;
  beforeAll(async () => {
    setup = await processSetup('tresor-audit-restart-');
    const key = join(setup.dir, 'audit-signing.pem');
    await writeFile(key, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    env = { TRESOR_ATTEST_AUDIT_SIGNING_KEY_FILE: key };
  });
  afterAll(() => setup.close());

  test('a second daemon exits 2 naming the holder; after kill -9 the stale lock is taken over; a missing audit.head stops the start until audit repair records the gap', { timeout: 120_000 }, async () => {
    const auditDir = join(setup.dir, 'state', 'audit');
    const stop = async (p: Spawned) => {
      p.child.kill('SIGTERM');
      return p.exited;
    };
    const first = await setup.serve(env);
    const ids = [await chat(first.base, 1)];
    await recorded(first.base.replace(/\/v1$/, ''), ids[0] as string);
    expect(first.p.stdout()).toMatch(/audit checkpoints are signed with Ed25519 key sha256:[0-9a-f]{64}/);
    await expect.poll(async () => (await readAuditRecords(join(setup.dir, 'state'))).filter((r) => r.type === 'receipt').length, { timeout: 20_000 }).toBe(1);
    // The record is in the file before its fdatasync returns; /status names it once it is durable.
    const readStatus = async () => (await (await request(`${first.base.replace(/\/v1$/, '')}/status`)).body.json()) as { audit: Record<string, unknown> };
    await expect.poll(async () => (await readStatus()).audit.last_record_at, { timeout: 10_000 }).not.toBeNull();
    const status = await readStatus();
    // The audit log's health an operator reads on /status and the status page: head, last record, disk.
    expect(status.audit).toMatchObject({
      writable: true,
      signing: { public_key_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      head_seq: expect.any(Number),
      head_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      last_record_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      disk: { free_bytes: expect.any(Number), total_bytes: expect.any(Number), used_percent: expect.any(Number) },
    });
    expect((status.audit.disk as { free_bytes: number }).free_bytes).toBeGreaterThan(0);

    await expect(setup.serve(env)).rejects.toThrow(new RegExp(`exited 2; stderr: tresor-attest: .*in use by another tresor-attest \\(pid ${first.p.child.pid} `));

    first.p.child.kill('SIGKILL');
    await first.p.exited;
    const third = await setup.serve(env);
    expect(third.p.stdout()).toContain(`stale lock in ${join(setup.dir, 'state')} (pid ${first.p.child.pid} is not running`);
    ids.push(await chat(third.base, 2));
    await expect.poll(async () => (await readAuditRecords(join(setup.dir, 'state'))).filter((r) => r.type === 'receipt').length, { timeout: 20_000 }).toBe(2);
    expect(await stop(third.p)).toBe(0);

    await rm(join(auditDir, 'audit.head'));
    await expect(setup.serve(env)).rejects.toThrow(/exited 4; stderr: tresor-attest: the audit log in .* does not match audit\.head \(head_missing\).*tresor-attest audit repair/);
    const repair = spawnBin('tresor-attest', ['audit', 'repair', '--state-dir', join(setup.dir, 'state')], { ...env, TRESOR_ATTEST_RELEASE_ROOT_FILE: join(setup.dir, 'release-root.pub'), TRESOR_ATTEST_UPSTREAM_URL: setup.sim.url });
    expect(await repair.exited, repair.stderr()).toBe(0);
    const last = await setup.serve(env);
    ids.push(await chat(last.base, 3));
    await expect.poll(async () => (await readAuditRecords(join(setup.dir, 'state'))).filter((r) => r.type === 'receipt').length, { timeout: 20_000 }).toBe(3);
    expect(await stop(last.p)).toBe(0);

    const receipts = (await readAuditRecords(join(setup.dir, 'state'))).filter((r) => r.type === 'receipt');
    expect(receipts.map((r) => r.request_id)).toEqual(ids);
    const v = spawnBin('tresor-verify', ['audit', '--audit-key', join(auditDir, 'audit.pub'), auditDir]);
    expect(await v.exited, v.stdout()).toBe(0);
    expect(v.stdout()).toMatch(/Gaps: +1 /);
    expect(v.stdout()).toMatch(/gap: .* head_missing: /);
  });
});

describe('the audit and journal directories removed while the daemon runs', () => {
  test('recreated with an error log line; later completions are all recorded; the loss is a gap tresor-verify audit lists', { timeout: 60_000 }, async () => {
    const h = await startHarness();
    try {
      const stateDir = join(h.dir, 'state');
      // Removed during its record's fdatasync, request 1's record would rightly be written again to the recreated log.
      // The pin's attestation record (seq 1), then the receipt record (seq 2).
      await recorded(h.origin, await chat(h.base, 1));
      // Retried: the daemon may write into the directory (audit.head, the evidence archive) while it is being removed.
      await rm(join(stateDir, 'audit'), { recursive: true, maxRetries: 5 });
      await rm(join(stateDir, 'receipts'), { recursive: true, maxRetries: 3 });
      const later = [await chat(h.base, 2), await chat(h.base, 3)];
      await expect.poll(async () => (await readAuditRecords(stateDir).catch(() => [])).filter((r) => r.type === 'receipt').length, { timeout: 10_000 }).toBe(2);
      const recs = await readAuditRecords(stateDir);
      expect(recs.filter((r) => r.type === 'receipt').map((r) => r.request_id).sort()).toEqual([...later].sort());
      expect(recs[0]).toMatchObject({ type: 'gap', reason: 'files_removed', lost: { from_seq: 1, to_seq: 2 } });
      expect(h.logs.records.filter((r) => r.event === 'audit.recreated' && r.level === 50).length).toBeGreaterThanOrEqual(2);
      const report = await verifyAuditFiles([join(stateDir, 'audit')]);
      expect(report.breaks).toEqual([]);
      expect(report.gaps).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});
