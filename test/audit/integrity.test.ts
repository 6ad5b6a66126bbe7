import { generateKeyPairSync } from 'node:crypto';
import { appendFile, mkdtemp, open, readdir, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { CheckpointSigner } from '../../src/audit/checkpoint.js';
import { lineHash } from '../../src/audit/format.js';
import { AuditLog } from '../../src/audit/log.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { mountSmallFs, smallFsUnavailable, type SmallFs } from '../helpers/small-fs.js';
import { spawnBin } from '../helpers/spawn.js';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});
/** A state dir with its audit dir (the CLI's --state-dir finds `<state>/audit`). */
async function tmp(): Promise<{ state: string; dir: string }> {
  const state = await mkdtemp(join(tmpdir(), 'tresor-integrity-'));
  dirs.push(state);
  return { state, dir: join(state, 'audit') };
}
const clock = () => new Date();
const rec = (i: number) => ({ type: 'receipt', job: `job-${i}`, request_id: `req-${i}`, verdict: i % 3 ? 'verified' : 'failed' });

async function write(dir: string, n: number, o: { signer?: CheckpointSigner } = {}): Promise<void> {
  const log = await AuditLog.open({ dir, clock, ...o });
  for (let i = 1; i <= n; i++) await log.append(rec(i));
  await log.close();
}
const logFiles = async (dir: string) => (await readdir(dir)).filter((f) => /^audit-.*\.jsonl$/.test(f)).sort().map((f) => join(dir, f));
/** The newest log file. */
const logFile = async (dir: string) => (await logFiles(dir)).at(-1) as string;
const lines = async (dir: string) => (await Promise.all((await logFiles(dir)).map((f) => readFile(f, 'utf8')))).join('').split('\n').filter(Boolean);

/** What an intruder with write access but without the audit key can do: change lines and re-chain every hash after them (audit.head too). */
async function rewrite(dir: string, edit: (recs: Record<string, unknown>[]) => Record<string, unknown>[]): Promise<void> {
  const recs = edit((await lines(dir)).map((l) => JSON.parse(l) as Record<string, unknown>));
  let prev = '0'.repeat(64);
  const out = recs.map((r, i) => {
    const fixed: Record<string, unknown> = { ...r, seq: i + 1, prev };
    if (fixed.type === 'checkpoint') fixed.checkpoint = { ...(fixed.checkpoint as object), seq: i, hash: prev };
    const line = JSON.stringify(fixed);
    prev = lineHash(line);
    return line;
  });
  await writeFile(await logFile(dir), `${out.join('\n')}\n`);
  await writeFile(join(dir, 'audit.head'), JSON.stringify({ seq: out.length, hash: prev }));
}

/** `tresor-attest audit repair` with the daemon's settings (here: a state dir, no upstream to attest). */
const repairCli = (state: string) => spawnBin('tresor-attest', ['audit', 'repair', '--state-dir', state], { TRESOR_ATTEST_ATTESTATION_MODE: 'off', TRESOR_ATTEST_CONFIG: '' });

const verifyCli = async (...args: string[]) => {
  const p = spawnBin('tresor-verify', ['audit', ...args]);
  return { code: await p.exited, out: p.stdout() };
};

describe('audit log at start: checked against audit.head, repaired only with an explicit gap record', () => {
  test.each([
    ['a truncated tail', async (dir: string) => writeFile(await logFile(dir), `${(await lines(dir)).slice(0, 6).join('\n')}\n`), 'truncated', /seq 11 truncated \(seq 7\.\.10 lost\)/],
    ['a missing audit.head with records present', async (dir: string) => rm(join(dir, 'audit.head')), 'head_missing', /seq 11 head_missing/],
    ['a rewritten last record', async (dir: string) => writeFile(await logFile(dir), (await readFile(await logFile(dir), 'utf8')).replace(/"verdict":"verified"\}\n$/, '"verdict":"failed"}\n')), 'rewritten', /seq 11 rewritten/],
  ])('%s: the log refuses to open (ERR_AUDIT_HEAD_MISMATCH); tresor-attest audit repair records a chained gap; tresor-verify audit passes and lists it', async (_name, tamper, reason, gapLine) => {
    const { state, dir } = await tmp();
    await write(dir, 10);
    await tamper(dir);
    await expect(AuditLog.open({ dir, clock })).rejects.toMatchObject({ code: 'ERR_AUDIT_HEAD_MISMATCH', message: expect.stringContaining('tresor-attest audit repair') });
    const repair = repairCli(state);
    expect(await repair.exited, repair.stderr()).toBe(0);
    expect(repair.stdout()).toContain(`recorded gap (${reason})`);
    const gap = JSON.parse((await lines(dir)).at(-1) as string) as Record<string, unknown>;
    expect(gap).toMatchObject({ type: 'gap', reason });
    // Now the log opens, continues the chain after the gap, and verifies.
    await write(dir, 2);
    const v = await verifyCli(dir);
    expect(v.code, v.out).toBe(0);
    expect(v.out).toMatch(/^PASS\n/);
    expect(v.out).toMatch(/Gaps: +1 \(records lost, recorded in the chain\)/);
    expect(v.out).toMatch(gapLine);
    const again = repairCli(state);
    expect(await again.exited).toBe(0);
    expect(again.stdout()).toContain('nothing to repair');
  });

  test('a malformed complete last line is moved aside (not ERR_INTERNAL), reported by tresor-verify audit, and the chain continues', async () => {
    const { dir } = await tmp();
    await write(dir, 5);
    await appendFile(await logFile(dir), '{"seq":6,"garbage\n');
    const log = await AuditLog.open({ dir, clock });
    expect(log.recovered.movedAside).toEqual([{ file: expect.stringMatching(/^audit-/), bytes: 18, reason: 'malformed' }]);
    await log.append(rec(6));
    await log.close();
    expect(await readFile(`${await logFile(dir)}.torn`, 'utf8')).toBe('{"seq":6,"garbage\n');
    const v = await verifyCli(dir);
    expect(v.code, v.out).toBe(0);
    expect(v.out).toMatch(/moved aside: audit-\d{8}-0001\.jsonl\.torn \(18 bytes/);
  });

  test('the audit directory removed while the log is open: recreated, the loss recorded as a gap, later records all written', async () => {
    const { dir } = await tmp();
    const log = await AuditLog.open({ dir, clock });
    for (let i = 1; i <= 3; i++) await log.append(rec(i));
    await rm(dir, { recursive: true });
    expect(await log.append(rec(4))).toMatchObject({ seq: 5 });
    await log.append(rec(5));
    await log.close();
    const recs = (await lines(dir)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.map((r) => r.type)).toEqual(['gap', 'receipt', 'receipt']);
    expect(recs[0]).toMatchObject({ seq: 4, reason: 'files_removed', lost: { from_seq: 1, to_seq: 3 } });
    const report = await verifyAuditFiles([dir]);
    expect(report.breaks).toEqual([]);
    expect(report.gaps).toMatchObject([{ seq: 4, reason: 'files_removed' }]);
  });
  test('the directory removed while a record is being committed (written, not yet synced): it is written again, once, in the recreated log; nothing counted lost', async () => {
    // What the e2e test "the audit and journal directories removed while the daemon runs" saw under
    // load: a reader sees the line right after write(2), the directory goes during the fdatasync, and
    // the commit's check finds the file gone. The record was never durable at its path: it is held
    // and written to the new file, so the surviving log holds it exactly once after a gap that lost nothing.
    const { dir } = await tmp();
    const log = await AuditLog.open({ dir, clock });
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    await rm(join(dir, 'probe'));
    const sync = proto.datasync;
    const held = vi.spyOn(proto, 'datasync').mockImplementationOnce(async function (this: FileHandle) {
      expect((await lines(dir)).map((l) => (JSON.parse(l) as { request_id: string }).request_id)).toEqual(['req-1']);
      await rm(dir, { recursive: true });
      return sync.call(this);
    });
    try {
      expect(await log.append(rec(1))).toMatchObject({ seq: 2 });
      expect(held).toHaveBeenCalled();
    } finally {
      held.mockRestore();
    }
    await log.append(rec(2));
    await log.close();
    const recs = (await lines(dir)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.map((r) => r.request_id ?? r.type)).toEqual(['gap', 'req-1', 'req-2']);
    expect(recs[0]).toMatchObject({ seq: 1, reason: 'files_removed', found: { seq: 0 } });
    expect(recs[0]).not.toHaveProperty('lost');
    expect(recs[0]?.detail).toMatch(/no record was lost/);
    expect((await verifyAuditFiles([dir])).breaks).toEqual([]);
  });
});

describe('the log cut short while open', () => {
  test('the next commit notices (never pads the file), continues in a new file and records the lost seqs as a gap', async () => {
    const { dir } = await tmp();
    const log = await AuditLog.open({ dir, clock });
    for (let i = 1; i <= 5; i++) await log.append(rec(i));
    await writeFile(await logFile(dir), `${(await lines(dir)).slice(0, 2).join('\n')}\n`);
    expect(await log.append(rec(6))).toMatchObject({ seq: 7 });
    await log.close();
    const recs = (await lines(dir)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 6, 7]);
    expect(recs[2]).toMatchObject({ type: 'gap', reason: 'truncated', lost: { from_seq: 3, to_seq: 5 } });
    expect((await verifyAuditFiles([dir])).breaks).toEqual([]);
    expect((await logFiles(dir)).length).toBe(2);
  });
});

describe('signed checkpoints', () => {
  let keyDir: string;
  let signer: CheckpointSigner;
  let pubFile: string;
  beforeAll(async () => {
    keyDir = await mkdtemp(join(tmpdir(), 'tresor-audit-key-'));
    const { privateKey } = generateKeyPairSync('ed25519');
    signer = CheckpointSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }), 'test');
    pubFile = join(keyDir, 'audit.pub');
    await writeFile(pubFile, signer.publicPem);
  });
  afterAll(() => rm(keyDir, { recursive: true, force: true }));

  test('at close and at the interval; audit.pub beside the log; tresor-verify audit --audit-key checks them', async () => {
    const { dir } = await tmp();
    const log = await AuditLog.open({ dir, clock, signer, checkpointIntervalMs: 50 });
    // One group commit: appended one by one, an fdatasync slower than the 50 ms interval (load) let a checkpoint in between.
    await Promise.all([1, 2, 3].map((i) => log.append(rec(i))));
    await expect.poll(async () => (await lines(dir)).map((l) => JSON.parse(l).type), { timeout: 5000 }).toEqual(['receipt', 'receipt', 'receipt', 'checkpoint']);
    await log.append(rec(4));
    await log.close();
    const recs = (await lines(dir)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.at(-1)).toMatchObject({ type: 'checkpoint', checkpoint: { seq: 5, instance: log.instance }, key_sha256: signer.keySha256 });
    expect(await readFile(join(dir, 'audit.pub'), 'utf8')).toBe(signer.publicPem);
    const v = await verifyCli('--audit-key', join(dir, 'audit.pub'), dir);
    expect(v.code, v.out).toBe(0);
    expect(v.out).toContain('Signed:   2 checkpoint(s) verified with the audit key, last at seq 6; 0 record(s) after it not yet covered');
  });

  test('a rewrite by someone without the key: the chain alone passes, --audit-key does not', async () => {
    const { dir } = await tmp();
    await write(dir, 6, { signer });
    await rewrite(dir, (recs) => recs.map((r) => (r.seq === 3 ? { ...r, verdict: 'verified' } : r)));
    const plain = await verifyCli(dir);
    expect(plain.code).toBe(0);
    expect(plain.out).toContain('the chain alone does not show a rewrite by someone with write access');
    const keyed = await verifyCli('--audit-key', pubFile, dir);
    expect(keyed.code).toBe(4);
    expect(keyed.out).toMatch(/^FAIL ERR_AUDIT_CHECKPOINT_SIGNATURE/);
  });

  test('checkpoints dropped by the rewrite: ERR_AUDIT_NO_CHECKPOINT; another key: ERR_AUDIT_CHECKPOINT_SIGNATURE', async () => {
    const { dir } = await tmp();
    await write(dir, 4, { signer });
    const other = join(keyDir, 'other.pub');
    await writeFile(other, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    expect((await verifyCli('--audit-key', other, dir)).out).toMatch(/^FAIL ERR_AUDIT_CHECKPOINT_SIGNATURE/);
    await rewrite(dir, (recs) => recs.filter((r) => r.type !== 'checkpoint'));
    const keyed = await verifyCli('--audit-key', pubFile, dir);
    expect(keyed.code).toBe(4);
    expect(keyed.out).toMatch(/^FAIL ERR_AUDIT_NO_CHECKPOINT/);
  });
});

const unavailable = smallFsUnavailable();
if (unavailable) process.stdout.write(`audit integrity (full disk): skipped: ${unavailable}\n`);

describe.skipIf(unavailable !== undefined)('a failed or short write (a real 256 KiB tmpfs)', () => {
  let fs: SmallFs;
  beforeAll(async () => {
    fs = await mountSmallFs(256);
  });
  afterAll(() => fs?.close());

  test('never advances seq/prev and leaves no fragment: the record is held and written whole once there is room', async () => {
    const dir = join(fs.dir, 'audit');
    const log = await AuditLog.open({ dir, clock, retryMs: 50 });
    for (let i = 1; i <= 3; i++) await log.append(rec(i));
    await fs.fill();
    // Bigger than the slack left in the file's last page: a short write, then ENOSPC.
    const big = log.append({ ...rec(4), detail: 'x'.repeat(20_000) });
    await expect.poll(() => log.held).toBe(1);
    await new Promise((r) => setTimeout(r, 150));
    expect((await readFile(await logFile(dir), 'utf8')).endsWith('\n')).toBe(true);
    expect(await lines(dir)).toHaveLength(3);
    expect(log.head.seq).toBe(3);
    await fs.free();
    expect(await big).toMatchObject({ seq: 4 });
    expect(await log.append(rec(5))).toMatchObject({ seq: 5 });
    await log.close();
    expect((await verifyAuditFiles([dir])).breaks).toEqual([]);
  });
});
