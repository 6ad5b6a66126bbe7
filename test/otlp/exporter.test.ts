import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CheckpointSigner } from '../../src/audit/checkpoint.js';
import { lineHash } from '../../src/audit/format.js';
import { AuditLog } from '../../src/audit/log.js';
import { ReceiptArchive } from '../../src/audit/archive.js';
import { blobSha256, EvidenceStore, pinDocument } from '../../src/audit/evidence.js';
import { resolveConfig } from '../../src/config/load.js';
import { AuditExporter } from '../../src/otlp/exporter.js';
import { resolveOtlpSettings, type OtlpProtocol } from '../../src/otlp/settings.js';
import { verifyOtlpJson } from '../../src/fleet/verify.js';
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

  test('an evidence or receipt log record without a SHA-256 name (a path, say) is malformed, and nothing is written by that name', async () => {
    const req = JSON.parse(lines[0] as string) as { resourceLogs: { scopeLogs: { logRecords: unknown[] }[] }[] };
    const instance = { key: 'tresor.instance.id', value: { stringValue: 'i-1' } };
    (req.resourceLogs[0]?.scopeLogs[0]?.logRecords as unknown[]).unshift(
      { body: { stringValue: Buffer.from('x').toString('base64') }, attributes: [instance, { key: 'tresor.evidence.sha256', value: { stringValue: '../../x' } }] },
      { attributes: [instance, { key: 'tresor.receipt.jws_sha256', value: { stringValue: 'a'.repeat(64) } }] },
    );
    const r = await verifyWith(`${[JSON.stringify(req), ...lines.slice(1)].join('\n')}\n`);
    expect(codes(r)).toEqual(['ERR_AUDIT_OTLP_MALFORMED', 'ERR_AUDIT_OTLP_MALFORMED']);
    expect(r.breaks[0]?.message).toContain('tresor.evidence.sha256');
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
    const both = spawnBin('tresor-verify', ['audit', '--otlp-json', f, '--evidence', 'f'.repeat(64)]);
    expect(await both.exited).toBe(2);
    expect(both.stdout()).toMatch(/^FAIL ERR_USAGE_BAD_FLAG: --evidence ID reads one pin from a state dir, not from --otlp-json/);
    const empty = join(scratch, 'empty.jsonl');
    await writeFile(empty, `${JSON.stringify({ resourceLogs: [] })}\n`);
    const nothing = spawnBin('tresor-verify', ['audit', '--otlp-json', empty]);
    expect(await nothing.exited).toBe(2);
    expect(nothing.stdout()).toMatch(/^FAIL ERR_USAGE_NO_AUDIT_FILES: /);
  });
});

describe('what the records name travels before them: evidence blobs and archived receipts (docs/wire.md §7.1)', () => {
  type Lr = { eventName?: string; body: { stringValue: string }; attributes: { key: string; value: { stringValue?: string } }[] };
  const attr = (lr: Lr, key: string) => lr.attributes.find((a) => a.key === key)?.value.stringValue;
  const logRecords = async (out: string): Promise<Lr[]> =>
    (await readFile(out, 'utf8').catch(() => '')).split('\n').filter(Boolean).flatMap((l) => (JSON.parse(l) as { resourceLogs: { scopeLogs: { logRecords: Lr[] }[] }[] }).resourceLogs.flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords)));
  /** An audit directory, its log and a receiver writing to `collector.jsonl` beside it. */
  const setup = async (name: string) => {
    const base = join(scratch, name);
    const out = join(base, 'collector.jsonl');
    return { dir: join(base, 'a'), out, receiver: await startOtlpReceiver(out), log: await AuditLog.open({ dir: join(base, 'a'), clock }) };
  };
  const pin = (envelope: string) => pinDocument({ profile: 'tresor', blobs: { envelope, trust_bundle: 'the shared bundle' }, tlsChain: [], policy: {} }, { upstream: 'tresor', verifiedAt: new Date().toISOString(), testRoots: true });

  test('each pin blob once (parts, then the pin document), each archived JWS, before the record; a pruned blob is not sent; a record waits for its JWS still being archived', { timeout: 30_000 }, async () => {
    const { dir, out, receiver, log } = await setup('attachments');
    const store = new EvidenceStore(dir);
    const archive = new ReceiptArchive(dir);
    const [p1, p2] = [pin('envelope one'), pin('envelope two')];
    for (const p of [p1, p2]) await store.putPin(p);
    // As the pin documents say (the verifier compares): no release root here, so checked against their hashes only.
    const record = (p: ReturnType<typeof pin>) => {
      const doc = JSON.parse(p.bytes.toString('utf8')) as Record<string, unknown>;
      return { type: 'attestation', evidence: p.id, upstream: doc.upstream, profile: doc.profile, verified_at: doc.verified_at, test_roots: doc.test_roots };
    };
    await log.append(record(p1));
    await log.append(record(p2));
    // The same pin again (a restart re-pins): nothing new to send. A pin whose blobs were pruned: nothing sent.
    await log.append(record(p1));
    await log.append({ ...record(p1), evidence: 'e'.repeat(64) });
    const jws = 'eyJhbGciOiJFUzI1NiJ9.eyJyIjoxfQ.c2ln';
    const sha = await archive.put(jws, new Date());
    await log.append({ type: 'receipt', verdict: 'verified', receipt_jws_sha256: sha });
    const e = await AuditExporter.start({ dir, settings: settings(receiver, 'http/json'), clock, headSeq: () => log.head.seq });
    const has = (pred: (lr: Lr) => boolean) => async () => (await logRecords(out)).some(pred);
    await until('the receipt record', has((lr) => attr(lr, 'tresor.audit.type') === 'receipt' && lr.body.stringValue.includes(sha)));
    let lrs = await logRecords(out);
    const ev = lrs.filter((lr) => lr.eventName === 'tresor.evidence');
    const ids = (p: ReturnType<typeof pin>) => [blobSha256(p.parts[0] as string), blobSha256('the shared bundle'), p.id];
    // Parts first, then the document; the shared bundle only with the first pin.
    expect(ev.map((lr) => attr(lr, 'tresor.evidence.sha256'))).toEqual([...ids(p1), ids(p2)[0], p2.id]);
    for (const lr of ev) {
      expect(attr(lr, 'tresor.instance.id')).toBe(e.instanceId);
      expect(blobSha256(Buffer.from(lr.body.stringValue, 'base64'))).toBe(attr(lr, 'tresor.evidence.sha256'));
    }
    const pinRecord = (id: string) => lrs.findIndex((lr) => attr(lr, 'tresor.audit.type') === 'attestation' && lr.body.stringValue.includes(id));
    expect(lrs.findIndex((lr) => attr(lr, 'tresor.evidence.sha256') === p1.id)).toBeLessThan(pinRecord(p1.id));
    expect(lrs.findIndex((lr) => attr(lr, 'tresor.evidence.sha256') === p2.id)).toBeLessThan(pinRecord(p2.id));
    const receipt = lrs.findIndex((lr) => lr.eventName === 'tresor.receipt');
    expect(lrs[receipt]).toMatchObject({ body: { stringValue: jws } });
    expect(attr(lrs[receipt] as Lr, 'tresor.receipt.jws_sha256')).toBe(sha);
    expect(lrs[receipt + 1]?.body.stringValue).toContain(`"receipt_jws_sha256":"${sha}"`);

    // A receipt record written before its archive line (they are written side by side): held back until the line is there.
    const late = 'eyJhbGciOiJFUzI1NiJ9.eyJyIjoyfQ.c2ln';
    await log.append({ type: 'receipt', verdict: 'verified', receipt_jws_sha256: blobSha256(late) });
    await new Promise((r) => setTimeout(r, 300));
    expect((await logRecords(out)).some((lr) => lr.body.stringValue.includes(blobSha256(late)))).toBe(false);
    await archive.put(late, new Date());
    await until('the late receipt', has((lr) => lr.eventName === 'tresor.receipt' && lr.body.stringValue === late));
    lrs = await logRecords(out);
    expect(lrs.at(-2)?.body.stringValue).toBe(late);
    // Archived in another order than recorded: B's line was scanned past (for C) before B's record came.
    const [b, c] = ['eyJhbGciOiJFUzI1NiJ9.eyJyIjoiYiJ9.c2ln', 'eyJhbGciOiJFUzI1NiJ9.eyJyIjoiYyJ9.c2ln'];
    await archive.put(b, new Date());
    await archive.put(c, new Date());
    await log.append({ type: 'receipt', verdict: 'verified', receipt_jws_sha256: blobSha256(c) });
    await until('receipt C', has((lr) => lr.eventName === 'tresor.receipt' && lr.body.stringValue === c));
    await log.append({ type: 'receipt', verdict: 'verified', receipt_jws_sha256: blobSha256(b) });
    // Well within the 5 s an unarchived receipt may wait: found where it was scanned, not waited for.
    await until('receipt B', has((lr) => lr.eventName === 'tresor.receipt' && lr.body.stringValue === b), 2_000);
    lrs = await logRecords(out);
    expect(lrs.at(-1)?.body.stringValue).toContain(`"receipt_jws_sha256":"${blobSha256(b)}"`);
    await e.stop();
    await log.close();
    await archive.close();
    await receiver.close();
    // The export re-verifies as the state dir would: the pruned pin is missing, everything else is there.
    const report = await verifyOtlpJson([out]);
    expect(report.breaks.map((b) => b.code)).toEqual(['ERR_AUDIT_EVIDENCE_MISSING']);
    expect(report.instances[0]?.pins.pins.map((p) => p.result)).toEqual(['skipped', 'skipped', 'skipped', 'failed']);
  });

  test('a receipt record whose JWS never reached the archive is sent without it once older than the wait', { timeout: 30_000 }, async () => {
    const { dir, out, receiver, log } = await setup('attachments-old');
    await log.append({ type: 'receipt', verdict: 'verified', receipt_jws_sha256: 'f'.repeat(64) });
    const later = () => new Date(Date.now() + 6_000);
    const e = await AuditExporter.start({ dir, settings: settings(receiver, 'http/json'), clock: later, headSeq: () => log.head.seq });
    await until('the record', async () => (await logRecords(out)).length > 0);
    expect((await logRecords(out)).map((lr) => attr(lr, 'tresor.audit.type'))).toEqual(['receipt']);
    await e.stop();
    await log.close();
    await receiver.close();
  });
});

describe('otlp.max_request_bytes: a batch larger than the collector takes goes as smaller requests', () => {
  const sized = (receiver: OtlpReceiver, protocol: OtlpProtocol, maxRequestBytes: number) => {
    const otlp = { endpoint: receiver.url, protocol, interval_ms: 20, retry_max_ms: 200, timeout_seconds: 2, batch_records: 512, max_request_bytes: maxRequestBytes };
    const s = resolveOtlpSettings(resolveConfig({ upstreams: [{ attestation: { mode: 'off' } }], otlp }, null).otlp, {});
    if (!s) throw new Error('no settings');
    return s;
  };
  /** A receipt record with its archived JWS of about `bytes`. */
  const receipt = async (log: AuditLog, archive: ReceiptArchive, i: number, bytes: number) => {
    const jws = `eyJhbGciOiJFUzI1NiJ9.${Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(bytes) })).toString('base64url')}.c2ln`;
    await log.append({ type: 'receipt', verdict: 'verified', request_id: `r-${i}`, receipt_jws_sha256: await archive.put(jws, new Date()) });
  };
  const open = async (name: string, maxBodyBytes: number) => {
    const base = join(scratch, name);
    const dir = join(base, 'a');
    const out = join(base, 'collector.jsonl');
    return { dir, out, receiver: await startOtlpReceiver(out, { maxBodyBytes }), log: await AuditLog.open({ dir, clock }), archive: new ReceiptArchive(dir) };
  };
  const allDelivered = (out: string, dir: string, e: AuditExporter) => async () => {
    const have = new Set((await exported(out)).get(e.instanceId) ?? []);
    return (await auditLines(dir)).every((l) => have.has(l));
  };

  test.each(['http/protobuf', 'http/json'] as const)('%s: 40 receipts of ~6 KB to a collector that refuses bodies over 64 KiB: all delivered, no request over the limit, no failure', { timeout: 30_000 }, async (protocol) => {
    const { dir, out, receiver, log, archive } = await open(`sized-${protocol.replace('/', '-')}`, 65_536);
    for (let i = 0; i < 40; i++) await receipt(log, archive, i, 4_500);
    const e = await AuditExporter.start({ dir, settings: sized(receiver, protocol, 65_536), clock, headSeq: () => log.head.seq });
    await until('every record', allDelivered(out, dir, e));
    expect(e.stats.failures).toBe(0);
    expect(receiver.sizes.length).toBeGreaterThan(3);
    expect(Math.max(...receiver.sizes)).toBeLessThanOrEqual(65_536);
    await e.stop();
    await log.close();
    await archive.close();
    await receiver.close();
    expect((await verifyOtlpJson([out])).breaks).toEqual([]);
  });

  test('one record over the limit with its JWS goes alone, with a warning; the records around it go in requests under the limit', { timeout: 30_000 }, async () => {
    const { dir, out, receiver, log, archive } = await open('sized-one-over', Infinity);
    await receipt(log, archive, 0, 100);
    await receipt(log, archive, 1, 30_000);
    await receipt(log, archive, 2, 100);
    let logged = '';
    const logger = pino({ level: 'warn' }, { write: (s: string) => void (logged += s) });
    const e = await AuditExporter.start({ dir, settings: sized(receiver, 'http/protobuf', 16_384), clock, headSeq: () => log.head.seq, logger });
    await until('every record', allDelivered(out, dir, e));
    expect(receiver.sizes.map((n) => n > 16_384)).toEqual([false, true, false]);
    const warning = logged.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'otlp.request_over_limit');
    expect(warning).toMatchObject({ level: 40, seq: 2, limit: 16_384 });
    expect(warning?.bytes).toBe(receiver.sizes[1]);
    await e.stop();
    await log.close();
    await archive.close();
    await receiver.close();
  });
});
