import { mkdtemp, readdir, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { spawnBin } from '../helpers/spawn.js';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});
async function tmp() {
  const d = await mkdtemp(join(tmpdir(), 'tresor-audit-'));
  dirs.push(d);
  return join(d, 'audit');
}
const rec = (i: number) => ({ job_id: `job-${i}`, upstream: 'tresor', route_requested: i % 2 ? 'eu/tresor/gpt-oss-120b' : 'auto/auto/gpt-oss-120b', verdict: i % 3 ? 'verified' : 'failed', receipt_id: `r-${i}` });

async function write(dir: string, n: number, opts: { maxFileBytes?: number; clock?: () => Date; retentionFiles?: number } = {}) {
  const log = await AuditLog.open({ dir, clock: opts.clock ?? (() => new Date('2026-11-22T10:00:00Z')), ...opts });
  await Promise.all(Array.from({ length: n }, (_, i) => log.append(rec(i))));
  await log.close();
}
const codes = async (dir: string) => (await verifyAuditFiles([dir])).breaks.map((b) => b.code);
const files = async (dir: string) => (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();

describe('audit log', () => {
  test('hash-chained records, group commit, 0600 files in a 0700 directory, chain intact', async () => {
    const dir = await tmp();
    const log = await AuditLog.open({ dir, clock: () => new Date('2026-11-22T10:00:00Z') });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(rec(i))));
    await log.close();
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const [f] = await files(dir);
    expect((await stat(join(dir, f as string))).mode & 0o777).toBe(0o600);
    const first = JSON.parse((await readFile(join(dir, f as string), 'utf8')).split('\n')[0] as string);
    expect(Object.keys(first).slice(0, 3)).toEqual(['seq', 'time', 'prev']);
    expect(first.prev).toBe('0'.repeat(64));
    const report = await verifyAuditFiles([dir]);
    expect(report.breaks).toEqual([]);
    expect(report.records).toBe(50);
    expect(report.byRoute['eu/tresor/gpt-oss-120b']).toBeDefined();
  });

  test('rotation by size and by day keeps one chain; reopening continues it', async () => {
    const dir = await tmp();
    await write(dir, 40, { maxFileBytes: 1500 });
    expect((await files(dir)).length).toBeGreaterThan(3);
    await write(dir, 5, { clock: () => new Date('2026-11-23T00:00:01Z') });
    expect((await files(dir)).at(-1)).toMatch(/^audit-20261123-0001\.jsonl$/);
    expect(await codes(dir)).toEqual([]);
    expect((await verifyAuditFiles([dir])).lastSeq).toBe(45);
  });

  test('retention drops the oldest files and anchors the chain', async () => {
    const dir = await tmp();
    await write(dir, 60, { maxFileBytes: 1200, retentionFiles: 3 });
    expect((await files(dir)).length).toBe(3);
    expect(await codes(dir)).toEqual([]);
  });

  test('a torn last line (crash mid-write) is moved aside and the chain continues', async () => {
    const dir = await tmp();
    await write(dir, 5);
    const [f] = await files(dir);
    await appendFile(join(dir, f as string), '{"seq":6,"ti');
    const log = await AuditLog.open({ dir, clock: () => new Date('2026-11-22T11:00:00Z') });
    expect(log.recovered.tornBytes).toBe(12);
    await log.append(rec(6));
    await log.close();
    expect(await codes(dir)).toEqual([]);
    expect(await readFile(join(dir, `${f}.torn`), 'utf8')).toBe('{"seq":6,"ti');
  });

  test.each([
    ['an edited record', async (dir: string, f: string) => {
      const text = await readFile(join(dir, f), 'utf8');
      await writeFile(join(dir, f), text.replace('"verdict":"failed"', '"verdict":"verifie"'));
    }, 'ERR_AUDIT_CHAIN_BROKEN'],
    ['a deleted record', async (dir: string, f: string) => {
      const lines = (await readFile(join(dir, f), 'utf8')).split('\n');
      lines.splice(3, 1);
      await writeFile(join(dir, f), lines.join('\n'));
    }, 'ERR_AUDIT_CHAIN_BROKEN'],
    ['reordered records', async (dir: string, f: string) => {
      const lines = (await readFile(join(dir, f), 'utf8')).split('\n');
      [lines[2], lines[3]] = [lines[3] as string, lines[2] as string];
      await writeFile(join(dir, f), lines.join('\n'));
    }, 'ERR_AUDIT_CHAIN_BROKEN'],
    ['a truncated tail', async (dir: string, f: string) => {
      const lines = (await readFile(join(dir, f), 'utf8')).split('\n');
      await writeFile(join(dir, f), `${lines.slice(0, 6).join('\n')}\n`);
    }, 'ERR_AUDIT_TRUNCATED'],
  ])('%s is reported by the verifier and by tresor-verify audit (exit 4)', async (_name, tamper, code) => {
    const dir = await tmp();
    await write(dir, 10);
    const [f] = await files(dir);
    await tamper(dir, f as string);
    expect(await codes(dir)).toContain(code);
    const p = spawnBin('tresor-verify', ['audit', dir]);
    expect(await p.exited).toBe(4);
    expect(p.stdout()).toMatch(/^FAIL ERR_AUDIT_/);
    expect(p.stdout()).toMatch(new RegExp(`break: (${(f as string).replace('.', '\\.')}|audit\\.head):`));
  });

  test('a deleted middle file breaks the chain; an intact log passes the CLI with a summary', async () => {
    const dir = await tmp();
    await write(dir, 30, { maxFileBytes: 1500 });
    const ok = spawnBin('tresor-verify', ['audit', dir]);
    expect(await ok.exited).toBe(0);
    expect(ok.stdout()).toMatch(/^PASS\nFiles: +\d+\nRecords: +30 \(last seq 30\)/);
    expect(ok.stdout()).toContain('eu/tresor/gpt-oss-120b');
    const all = await files(dir);
    await rm(join(dir, all[1] as string));
    expect(await codes(dir)).toContain('ERR_AUDIT_CHAIN_BROKEN');
  });
});
