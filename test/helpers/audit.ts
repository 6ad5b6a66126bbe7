import { createHash } from 'node:crypto';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Every record of the audit log under `stateDir/audit` (all rotated files), parsed. */
export async function readAuditRecords(stateDir: string): Promise<Record<string, unknown>[]> {
  const auditDir = join(stateDir, 'audit');
  const files = (await readdir(auditDir)).filter((f) => f.startsWith('audit-') && f.endsWith('.jsonl')).sort();
  return (await Promise.all(files.map((f) => readFile(join(auditDir, f), 'utf8'))))
    .join('\n')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export const sha256Hex = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');

/**
 * Edit the records of the audit directory `dir` with `edit` and re-chain every line after them
 * (and audit.head), as someone with write access and no audit key could: the chain passes, so
 * only the evidence checks can object.
 */
export async function rechainAudit(dir: string, edit: (rec: Record<string, unknown>) => void): Promise<void> {
  const files = (await readdir(dir)).filter((f) => /^audit-.*\.jsonl$/.test(f)).sort();
  let prev = '0'.repeat(64);
  let last = { seq: 0, hash: prev, file: '' };
  for (const f of files) {
    const out: string[] = [];
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n').filter(Boolean)) {
      const rec = JSON.parse(line) as Record<string, unknown>;
      edit(rec);
      rec.prev = prev;
      const text = JSON.stringify(rec);
      prev = sha256Hex(text);
      last = { seq: rec.seq as number, hash: prev, file: f };
      out.push(text);
    }
    await writeFile(join(dir, f), `${out.join('\n')}\n`);
  }
  await writeFile(join(dir, 'audit.head'), JSON.stringify(last));
}

/**
 * Replace the evidence blob `old` of the audit directory `dir` by `bytes` as a forger would: stored
 * under its own hash, and every pin document, record and the chain rewritten to name it. Returns the new id.
 */
export async function forgeEvidence(dir: string, old: string, bytes: string | Buffer): Promise<string> {
  const id = sha256Hex(bytes);
  const evidence = join(dir, 'evidence');
  await writeFile(join(evidence, id), bytes);
  for (const f of await readdir(evidence)) {
    const text = await readFile(join(evidence, f), 'utf8');
    if (f === id || !text.includes(old)) continue;
    await forgeEvidence(dir, f, text.replaceAll(old, id));
  }
  await rechainAudit(dir, (r) => {
    if (r.evidence === old) r.evidence = id;
    const a = r.attestation as Record<string, unknown> | undefined;
    if (a?.evidence === old) a.evidence = id;
  });
  return id;
}

/**
 * Forge pin `id` in the audit directory `dir`: its document edited by `edit`, stored under its new
 * hash (the old one removed), and every record naming it rewritten and re-chained. Returns the new id.
 */
export async function forgePin(dir: string, id: string, edit: (doc: Record<string, unknown>) => void): Promise<string> {
  const doc = JSON.parse(await readFile(join(dir, 'evidence', id), 'utf8')) as Record<string, unknown>;
  edit(doc);
  const forged = await forgeEvidence(dir, id, JSON.stringify(doc));
  await rm(join(dir, 'evidence', id));
  return forged;
}
