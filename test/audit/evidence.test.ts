import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { blobSha256, EvidenceStore, pinDocument, pruneEvidence, readBlob, type PinEvidence } from '../../src/audit/evidence.js';
import { AuditLog } from '../../src/audit/log.js';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});
async function auditDir() {
  const d = await mkdtemp(join(tmpdir(), 'tresor-evidence-'));
  dirs.push(d);
  return join(d, 'audit');
}

const evidence = (envelope: string, bundle: string, nonce = 'ab'.repeat(32)): PinEvidence => ({
  profile: 'tresor',
  blobs: { envelope: Buffer.from(envelope), trust_bundle: bundle },
  nonce,
  tlsChain: ['AAAA'],
  policy: { allowDebug: false },
});

describe('evidence archive (evidence/<sha256> beside the audit log)', () => {
  test('the parts, then the pin document naming them, each stored once under its SHA-256, 0600 in a 0700 directory', async () => {
    const dir = await auditDir();
    const store = new EvidenceStore(dir);
    const a = pinDocument(evidence('{"envelope":1}', 'bundle.jws.v17'), { upstream: 'tresor', verifiedAt: '2026-12-06T00:00:00.000Z', testRoots: false });
    const b = pinDocument(evidence('{"envelope":2}', 'bundle.jws.v17', 'cd'.repeat(32)), { upstream: 'tresor', verifiedAt: '2026-12-06T00:09:00.000Z', testRoots: false });
    expect(await store.putPin(a)).toBe(a.id);
    expect(await store.putPin(b)).toBe(b.id);
    // Two pins sharing one trust bundle: 2 envelopes + 1 bundle + 2 pin documents.
    const files = (await readdir(join(dir, 'evidence'))).sort();
    expect(files).toEqual([a.id, b.id, blobSha256('{"envelope":1}'), blobSha256('{"envelope":2}'), blobSha256('bundle.jws.v17')].sort());
    expect((await stat(join(dir, 'evidence'))).mode & 0o777).toBe(0o700);
    for (const f of files) expect((await stat(join(dir, 'evidence', f))).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(await readFile(join(dir, 'evidence', a.id), 'utf8')) as Record<string, unknown>;
    expect(doc).toMatchObject({ format: 'tresor-attest.pin/v1', profile: 'tresor', upstream: 'tresor', nonce: 'ab'.repeat(32), blobs: { envelope: blobSha256('{"envelope":1}'), trust_bundle: blobSha256('bundle.jws.v17') } });
  });

  test('a damaged blob is replaced by the next put; readBlob reports missing and edited blobs by code', async () => {
    const dir = await auditDir();
    const store = new EvidenceStore(dir);
    const id = await store.put('the bundle');
    await writeFile(join(dir, 'evidence', id), 'the bundlE');
    await expect(readBlob(dir, id)).resolves.toMatchObject({ code: 'ERR_AUDIT_EVIDENCE_HASH' });
    await store.put('the bundle');
    expect((await readBlob(dir, id)) as { bytes: Buffer }).toEqual({ bytes: Buffer.from('the bundle') });
    await expect(readBlob(dir, 'f'.repeat(64))).resolves.toMatchObject({ code: 'ERR_AUDIT_EVIDENCE_MISSING' });
    await expect(readBlob(dir, '../audit.head')).resolves.toMatchObject({ code: 'ERR_AUDIT_EVIDENCE_MISSING' });
  });

  test('retention: once the log pruned the records that named a pin, its blobs go; a shared bundle and young blobs stay', async () => {
    const dir = await auditDir();
    const store = new EvidenceStore(dir);
    const at = (verifiedAt: string, env: string) => pinDocument(evidence(env, 'the shared bundle'), { upstream: 'tresor', verifiedAt, testRoots: false });
    const [a, b] = [at('2026-12-06T00:00:00.000Z', '{"envelope":"a"}'), at('2026-12-06T00:09:00.000Z', '{"envelope":"b"}')];
    await store.putPin(a);
    await store.putPin(b);
    const young = await store.put('a part whose pin record is not written yet');
    const old = new Date(Date.now() - 3_600_000);
    for (const f of await readdir(join(dir, 'evidence'))) if (f !== young) await utimes(join(dir, 'evidence', f), old, old);
    let pruned = 0;
    // One record per file, two files kept: the record naming pin a is pruned by the third file.
    const log = await AuditLog.open({ dir, clock: () => new Date(), maxFileBytes: 200, retentionFiles: 2, onPruned: () => pruned++ });
    await log.append({ type: 'attestation', evidence: a.id });
    await log.append({ type: 'attestation', evidence: b.id });
    expect(await pruneEvidence(dir, new Date())).toBe(0);
    await log.append({ type: 'receipt', attestation: { evidence: b.id } });
    await log.close();
    expect(pruned).toBe(1);
    expect(await pruneEvidence(dir, new Date())).toBe(2);
    expect((await readdir(join(dir, 'evidence'))).sort()).toEqual([b.id, blobSha256('{"envelope":"b"}'), blobSha256('the shared bundle'), young].sort());
  });
});
