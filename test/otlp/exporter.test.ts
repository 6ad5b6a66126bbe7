import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CheckpointSigner } from '../../src/audit/checkpoint.js';
import { lineHash } from '../../src/audit/format.js';
import { AuditLog } from '../../src/audit/log.js';
import { resolveConfig } from '../../src/config/load.js';
import { AuditExporter } from '../../src/otlp/exporter.js';
import { resolveOtlpSettings, type OtlpProtocol } from '../../src/otlp/settings.js';
import { verifyOtlpJson } from '../../src/otlp/verify.js';
import { spawnBin } from '../helpers/spawn.js';
import { auditLines, exported, startOtlpReceiver, until, type OtlpReceiver } from '../helpers/otlp-receiver.js';

const clock = () => new Date();
let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tresor-otlp-'));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

function settings(receiver: OtlpReceiver, protocol: OtlpProtocol) {
  const s = resolveOtlpSettings(resolveConfig({ upstreams: [{ attestation: { mode: 'off' } }], otlp: { endpoint: receiver.url, protocol, interval_ms: 20, retry_max_ms: 200, timeout_seconds: 0.3, batch_records: 7 } }, null).otlp, {});
  if (!s) throw new Error('no settings');
  return s;
}

const append = async (log: AuditLog, n: number, tag: string) => {
  for (let i = 0; i < n; i++) await log.append({ type: 'receipt', verdict: 'verified', request_id: `${tag}-${i}` });
};

describe.each(['http/protobuf', 'http/json'] as const)('audit trail exported over OTLP/HTTP (%s) to a real receiver', (protocol) => {
  test('two instances, the collector down for a while, an exporter restart mid-backlog: every record arrives at least once and the merged verification passes', { timeout: 60_000 }, async () => {
    const base = join(scratch, protocol.replace('/', '-'));
    const out = join(base, 'collector.jsonl');
    const receiver = await startOtlpReceiver(out);
    const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
    const signer = CheckpointSigner.fromPem(key, 'test');
    const dirs = [join(base, 'a'), join(base, 'b')];
    const logs = await Promise.all(dirs.map((dir) => AuditLog.open({ dir, clock, signer })));
    let exporters = await Promise.all(dirs.map((dir, i) => AuditExporter.start({ dir, settings: settings(receiver, protocol), clock, headSeq: () => (logs[i] as AuditLog).head.seq })));
    const delivered = async () => {
      const got = await exported(out);
      for (const [i, dir] of dirs.entries()) {
        const want = await auditLines(dir);
        const have = new Set(got.get((exporters[i] as AuditExporter).instanceId) ?? []);
        if (!want.every((l) => have.has(l))) return false;
      }
      return true;
    };
    await Promise.all(logs.map((log, i) => append(log, 20, `first-${i}`)));
    await until('the first records', delivered);

    // The collector goes down: the backlog stays in the files, the lag shows it, requests keep being recorded.
    await receiver.down();
    await Promise.all(logs.map((log, i) => append(log, 30, `down-${i}`)));
    await until('failed exports', () => exporters.every((e) => e.stats.failures > 0));
    expect((exporters[0] as AuditExporter).lag).toBeGreaterThan(0);
    // One exporter restarts mid-backlog, and resumes from its cursor.
    await (exporters[0] as AuditExporter).stop();
    exporters = [await AuditExporter.start({ dir: dirs[0] as string, settings: settings(receiver, protocol), clock, headSeq: () => (logs[0] as AuditLog).head.seq }), exporters[1] as AuditExporter];
    await Promise.all(logs.map((log, i) => log.checkpoint().then(() => append(log, 5, `after-${i}`))));
    await receiver.up();
    await until('the backlog', delivered);
    await until('a lag of zero', () => exporters.every((e) => e.lag === 0));
    for (const l of logs) await l.close();
    await until('the closing checkpoints', delivered);
    for (const e of exporters) await e.stop();
    await receiver.close();

    expect(receiver.received[protocol === 'http/json' ? 'json' : 'protobuf']).toBeGreaterThan(0);
    expect(receiver.received[protocol === 'http/json' ? 'protobuf' : 'json']).toBe(0);
    const report = await verifyOtlpJson([out], { auditKeys: [signer.publicKey] });
    expect(report.breaks).toEqual([]);
    expect(report.instances.map((r) => r.instance).sort()).toEqual(exporters.map((e) => e.instanceId).sort());
    for (const [i, dir] of dirs.entries()) {
      const r = report.instances.find((x) => x.instance === (exporters[i] as AuditExporter).instanceId);
      expect(r).toMatchObject({ firstSeq: 1, lastSeq: (await auditLines(dir)).length, records: (await auditLines(dir)).length, service: 'tresor-attest' });
      expect(r?.checkpoints.verified).toBeGreaterThan(0);
    }
    expect(exporters.every((e) => e.stats.dropped === 0)).toBe(true);
  });
});

describe('tresor-verify audit --otlp-json catches what an export cannot hide', () => {
  let out: string;
  let signer: CheckpointSigner;
  let lines: string[];
  beforeAll(async () => {
    const base = join(scratch, 'tamper');
    out = join(base, 'collector.jsonl');
    const receiver = await startOtlpReceiver(out);
    signer = CheckpointSigner.fromPem(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), 'test');
    const log = await AuditLog.open({ dir: join(base, 'a'), clock, signer });
    const e = await AuditExporter.start({ dir: join(base, 'a'), settings: settings(receiver, 'http/json'), clock });
    await append(log, 12, 't');
    await log.close();
    const want = (await auditLines(join(base, 'a'))).length;
    await until('the export', async () => ((await exported(out)).get(e.instanceId) ?? []).length >= want);
    await e.stop();
    await receiver.close();
    lines = (await readFile(out, 'utf8')).split('\n').filter(Boolean);
  });

  const verifyWith = async (text: string, keys = [signer.publicKey]) => {
    const f = join(scratch, `t-${Math.random().toString(36).slice(2)}.jsonl`);
    await writeFile(f, text);
    return verifyOtlpJson([f], { auditKeys: keys });
  };
  const codes = (r: Awaited<ReturnType<typeof verifyWith>>) => r.breaks.map((b) => b.code);

  test('the export as received passes; sent twice, it passes with the duplicates counted', async () => {
    expect(codes(await verifyWith(`${lines.join('\n')}\n`))).toEqual([]);
    const twice = await verifyWith(`${[...lines, ...lines].join('\n')}\n`);
    expect(codes(twice)).toEqual([]);
    expect(twice.instances[0]?.duplicates).toBe(twice.instances[0]?.records);
  });

  test('an edited body, a body and hash both rewritten, a removed record, a conflicting copy, another audit key', async () => {
    const edited = lines.map((l) => l.replace('t-3\\"', 't-X\\"'));
    expect(codes(await verifyWith(edited.join('\n')))).toContain('ERR_AUDIT_OTLP_HASH_MISMATCH');
    // All records in one request, to edit them by position (seq = index + 1).
    type Req = { resourceLogs: { scopeLogs: { logRecords: { body: { stringValue: string }; attributes: { key: string; value: Record<string, unknown> }[] }[] }[] }[] };
    const merged = (): Req => {
      const reqs = lines.map((l) => JSON.parse(l) as Req);
      const first = reqs[0] as Req;
      (first.resourceLogs[0] as Req['resourceLogs'][0]).scopeLogs = [{ logRecords: reqs.flatMap((r) => r.resourceLogs.flatMap((x) => x.scopeLogs.flatMap((y) => y.logRecords))) }];
      return first;
    };
    const recs = (r: Req) => r.resourceLogs[0]?.scopeLogs[0]?.logRecords ?? [];
    // Rewritten consistently (body and hash attribute): the chain shows it.
    const r0 = merged();
    const rec = recs(r0)[2];
    if (!rec) throw new Error('fixture');
    rec.body.stringValue = rec.body.stringValue.replace('t-2', 't-Y');
    (rec.attributes.find((a) => a.key === 'tresor.audit.line_sha256') as { value: Record<string, unknown> }).value = { stringValue: lineHash(rec.body.stringValue) };
    expect(codes(await verifyWith(JSON.stringify(r0)))).toContain('ERR_AUDIT_CHAIN_BROKEN');
    // The same seq with other bytes beside the original: a conflict.
    expect(codes(await verifyWith([...lines, JSON.stringify(r0)].join('\n')))).toContain('ERR_AUDIT_OTLP_CONFLICT');
    // A record missing from the export.
    const r1 = merged();
    recs(r1).splice(4, 1);
    expect(codes(await verifyWith(JSON.stringify(r1)))).toEqual(expect.arrayContaining(['ERR_AUDIT_SEQ_GAP', 'ERR_AUDIT_CHAIN_BROKEN']));
    // The first records missing: said, not hidden.
    const r2 = merged();
    recs(r2).splice(0, 2);
    expect(codes(await verifyWith(JSON.stringify(r2)))).toEqual(['ERR_AUDIT_OTLP_START']);
    const other = CheckpointSigner.fromPem(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), 'other');
    expect(codes(await verifyWith(lines.join('\n'), [other.publicKey]))).toEqual(expect.arrayContaining(['ERR_AUDIT_CHECKPOINT_SIGNATURE', 'ERR_AUDIT_NO_CHECKPOINT']));
  });

  test('the CLI: --json for the fleet export, several --audit-key, and nothing to check is a usage error (exit 2)', async () => {
    const f = join(scratch, 'cli.jsonl');
    await writeFile(f, `${lines.join('\n')}\n`);
    const other = CheckpointSigner.fromPem(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), 'other');
    const keys = [join(scratch, 'k1.pub'), join(scratch, 'k2.pub')];
    await writeFile(keys[0] as string, other.publicPem);
    await writeFile(keys[1] as string, signer.publicPem);
    const ok = spawnBin('tresor-verify', ['audit', '--otlp-json', f, '--audit-key', keys[0] as string, '--audit-key', keys[1] as string, '--json']);
    expect(await ok.exited, ok.stdout()).toBe(0);
    const out = JSON.parse(ok.stdout()) as { ok: boolean; instances: { checkpoints: { verified: number } }[] };
    expect(out.ok).toBe(true);
    expect(out.instances[0]?.checkpoints.verified).toBeGreaterThan(0);
    const none = spawnBin('tresor-verify', ['audit']);
    expect(await none.exited).toBe(2);
    expect(none.stdout()).toMatch(/^FAIL ERR_USAGE_BAD_FLAG: name the audit files or directory, or --otlp-json FILE/);
    const empty = join(scratch, 'empty.jsonl');
    await writeFile(empty, `${JSON.stringify({ resourceLogs: [] })}\n`);
    const nothing = spawnBin('tresor-verify', ['audit', '--otlp-json', empty]);
    expect(await nothing.exited).toBe(2);
    expect(nothing.stdout()).toMatch(/^FAIL ERR_USAGE_NO_AUDIT_FILES: /);
  });
});
