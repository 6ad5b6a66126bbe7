import type { KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reviewVerdicts } from '../audit/checks.js';
import { EVIDENCE_DIR } from '../audit/evidence.js';
import type { AuditBreak } from '../audit/verify.js';
import { checkPins, type PinReport } from '../envelope/audit-pins.js';
import type { KeyResolver } from '../receipts/jws.js';
import { recheckArchivedReceipts } from '../receipts/recheck.js';
import type { Certificate } from '../x509/certificate.js';

/** The trust material an auditor gives (`--release-root`, `--test-roots`, `--jwks-file`). */
export interface ReplayOptions {
  releaseRoot?: KeyObject | undefined;
  testRoots?: readonly Certificate[] | undefined;
  /** The router's receipt keys: re-verify every archived receipt, as `--jwks-file` does for a state dir. */
  resolveKey?: KeyResolver | undefined;
}

/** What one instance's export holds: its records in seq order (with where each was read), its blobs and receipts. */
export interface ExportedInstance {
  records: { text: string; file: string; line: number }[];
  /** Evidence blobs by the hash their attribute names (the bytes as received, which may not hash to it). */
  evidence: ReadonlyMap<string, Buffer>;
  /** Archived receipt JWSs by the hash their attribute names. */
  receipts: ReadonlyMap<string, string>;
}

export interface ReplayReport {
  pins: PinReport;
  /** With `resolveKey`: archived receipts re-verified, and `verified` records they confirmed. */
  receipts?: { checked: number; confirmed: number };
  breaks: AuditBreak[];
}

/**
 * Re-verify one instance's pins and receipts from a collector's export exactly as for a state
 * dir: the export is laid out as one (its records in an audit file, `evidence/<sha256>`, a receipt
 * archive) in a temporary directory, and the file-based checks run on it (`checkPins`, and with
 * keys the archived receipts' re-verification), with the same break codes; each break names the
 * export file and line of the record it is about. The directory is removed afterwards.
 */
export async function replayInstance(inst: ExportedInstance, o: ReplayOptions): Promise<ReplayReport> {
  const dir = await mkdtemp(join(tmpdir(), 'tresor-verify-otlp-'));
  try {
    const file = join(dir, 'audit-00000000-0001.jsonl');
    await writeFile(file, inst.records.map((r) => `${r.text}\n`).join(''), { mode: 0o600 });
    await mkdir(join(dir, EVIDENCE_DIR), { mode: 0o700 });
    // Only hex names reach the file system: the attributes are checked before (no path from an export).
    for (const [sha, bytes] of inst.evidence) await writeFile(join(dir, EVIDENCE_DIR, sha), bytes, { mode: 0o600 });
    await writeFile(join(dir, 'receipts-00000000.jsonl'), [...inst.receipts].map(([sha256, jws]) => `${JSON.stringify({ sha256, jws })}\n`).join(''), { mode: 0o600 });
    const breaks: AuditBreak[] = [];
    let receipts: ReplayReport['receipts'];
    if (o.resolveKey) {
      const r = await recheckArchivedReceipts([file], o.resolveKey);
      receipts = { checked: r.checked, confirmed: r.confirmed };
      breaks.push(...r.breaks, ...(await reviewVerdicts([file], { requireArchivedReceipt: true })).breaks);
    }
    const pins = await checkPins([file], { releaseRoot: o.releaseRoot, testRoots: o.testRoots });
    breaks.push(...pins.breaks);
    const at = (b: AuditBreak): AuditBreak => {
      const r = inst.records[b.line - 1];
      return r ? { ...b, file: r.file, line: r.line } : b;
    };
    return { pins: { ...pins, breaks: pins.breaks.map(at) }, ...(receipts ? { receipts } : {}), breaks: breaks.map(at) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
