import type { KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkpointProblem } from './checkpoint.js';
import { FILE_RE, GENESIS, lineHash } from './format.js';

export interface AuditBreak {
  file: string;
  line: number;
  code: string;
  message: string;
}

export interface AuditReport {
  files: string[];
  records: number;
  lastSeq: number;
  breaks: AuditBreak[];
  /** verdict counts by requested route, and by UTC day */
  byRoute: Record<string, Record<string, number>>;
  byDay: Record<string, Record<string, number>>;
  /** Gap records: losses the daemon (or `tresor-attest audit repair`) recorded in the chain. */
  gaps: { file: string; line: number; seq: number; reason: string; detail: string; lost?: { from_seq: number; to_seq: number } }[];
  /** Checkpoint records; `verified` counts good signatures (with an audit key); `uncovered`: records after the last good one. */
  checkpoints: { count: number; verified: number; lastSeq: number | null; uncovered: number };
  /** Tails moved aside at a start (`<file>.torn`): writes cut short by a crash, or malformed last lines. */
  movedAside: { file: string; bytes: number }[];
}

/** Audit files named by the arguments: files as given, directories expanded to their audit files. */
export async function collectAuditFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    if ((await stat(p)).isDirectory()) out.push(...(await readdir(p)).filter((f) => FILE_RE.test(f)).map((f) => join(p, f)));
    else out.push(p);
  }
  return [...new Set(out)].sort((a, b) => basename(a).localeCompare(basename(b)));
}

/**
 * Re-verify the hash chain across rotated files: every line parses, `seq` counts up by one,
 * `prev` is the SHA-256 of the previous line (the first line starts from zeros or from the
 * retention anchor), and the last record matches `audit.head` when present. An edited,
 * deleted, truncated or reordered record, a missing file or a torn line is reported as a break.
 */
export async function verifyAuditFiles(paths: readonly string[], opts: { auditKey?: KeyObject } = {}): Promise<AuditReport> {
  const files = await collectAuditFiles(paths);
  const dir = files[0] ? dirname(files[0]) : undefined;
  const readJson = async (name: string) => (dir ? ((await readFile(join(dir, name), 'utf8').then(JSON.parse).catch(() => undefined)) as { seq: number; hash: string } | undefined) : undefined);
  const anchor = await readJson('audit.anchor');
  const head = await readJson('audit.head');
  const walk = new ChainWalk(anchor ?? { seq: 0, hash: GENESIS }, opts.auditKey ? { keyFor: () => opts.auditKey } : {}, head);
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) walk.brk(basename(file), text.split('\n').length, 'ERR_AUDIT_TORN_LINE', 'the file ends in a partial line');
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    lines.forEach((line, i) => walk.line(basename(file), i + 1, line));
  }
  const report = walk.finish();
  report.files = files;
  if (dir) report.movedAside = await movedAside(dir);
  // The head is written after the records it names are durable, so it may lag (a live log, or a
  // crash between the two writes); it may never be ahead of the files or disagree at its own seq.
  if (head && (head.seq > report.lastSeq || (walk.hashAtHead !== undefined && head.hash !== walk.hashAtHead))) {
    const message =
      head.seq > report.lastSeq
        ? `audit.head records seq ${head.seq}, the files end at seq ${report.lastSeq}: records were removed from the end`
        : `audit.head records another hash for seq ${head.seq}: the tail was rewritten`;
    report.breaks.push({ file: 'audit.head', line: 0, code: 'ERR_AUDIT_TRUNCATED', message });
  }
  return report;
}

/**
 * One chain walked record by record, from a starting point (zeros, the retention anchor, or for
 * an OTLP export the first record received): `prev` must be the hash of the line before, `seq`
 * must count up by one (or jump over the seqs a gap record says are lost), checkpoints must name
 * the record before them and, with a key, be signed by it. Shared by the files and OTLP checks.
 */
export class ChainWalk {
  readonly report: AuditReport = { files: [], records: 0, lastSeq: 0, breaks: [], byRoute: {}, byDay: {}, gaps: [], checkpoints: { count: 0, verified: 0, lastSeq: null, uncovered: 0 }, movedAside: [] };
  /** The hash of the record at `head.seq`, when one was walked. */
  hashAtHead: string | undefined;
  private prev: string;
  private seq: number;
  private unsignedGaps = 0;

  constructor(
    start: { seq: number; hash: string },
    private readonly o: { keyFor?: (rec: Record<string, unknown>) => KeyObject | undefined } = {},
    private readonly head?: { seq: number } | undefined,
  ) {
    this.prev = start.hash;
    this.seq = start.seq;
  }

  brk(file: string, line: number, code: string, message: string): void {
    this.report.breaks.push({ file, line, code, message });
  }

  line(file: string, i: number, line: string): void {
    const report = this.report;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.brk(file, i, 'ERR_AUDIT_MALFORMED_LINE', 'not a JSON record');
      this.prev = lineHash(line);
      return;
    }
    if (rec.prev !== this.prev) this.brk(file, i, 'ERR_AUDIT_CHAIN_BROKEN', `prev does not match the previous record (edited, deleted or reordered before this line)`);
    const lost = rec.type === 'gap' ? gapLost(rec, this.seq) : undefined;
    if (rec.seq !== this.seq + 1 && !(lost && rec.seq === lost.to_seq + 1)) this.brk(file, i, 'ERR_AUDIT_SEQ_GAP', `expected seq ${this.seq + 1}, found ${String(rec.seq)}`);
    this.seq = typeof rec.seq === 'number' ? rec.seq : this.seq + 1;
    this.prev = lineHash(line);
    if (rec.type === 'gap') report.gaps.push({ file, line: i, seq: this.seq, reason: String(rec.reason), detail: String(rec.detail ?? ''), ...(lost ? { lost } : {}) });
    if (rec.type === 'checkpoint') this.checkpoint(rec, file, i);
    else report.checkpoints.uncovered += 1;
    if (this.head && this.seq === this.head.seq) this.hashAtHead = this.prev;
    report.records += 1;
    if (rec.type === 'gap') this.unsignedGaps += 1;
    const verdict = typeof rec.verdict === 'string' ? rec.verdict : 'unknown';
    const route = typeof rec.route_requested === 'string' ? rec.route_requested : '(none)';
    const day = typeof rec.time === 'string' ? rec.time.slice(0, 10) : '(no time)';
    const bump = (t: Record<string, Record<string, number>>, k: string) => ((t[k] ??= {})[verdict] = (t[k]?.[verdict] ?? 0) + 1);
    bump(report.byRoute, route);
    bump(report.byDay, day);
  }

  /** The report, with the signature checks that need the whole chain (with a key). */
  finish(): AuditReport {
    this.report.lastSeq = this.seq;
    if (this.o.keyFor) signatureBreaks(this.report, this.unsignedGaps);
    return this.report;
  }

  private checkpoint(rec: Record<string, unknown>, file: string, line: number): void {
    const report = this.report;
    report.checkpoints.count += 1;
    const key = this.o.keyFor?.(rec);
    const problem = checkpointProblem(rec, key);
    if (!problem && this.o.keyFor && !key) return this.brk(file, line, 'ERR_AUDIT_CHECKPOINT_SIGNATURE', `the checkpoint at seq ${String(rec.seq)} is signed by a key that was not given (key_sha256 ${String(rec.key_sha256)})`);
    if (problem) return this.brk(file, line, problem.code, problem.message);
    if (!key) return;
    report.checkpoints.verified += 1;
    report.checkpoints.lastSeq = rec.seq as number;
    report.checkpoints.uncovered = 0;
    this.unsignedGaps = 0;
  }
}

/** The seqs a gap record says are lost, when they start right after the previous record. */
function gapLost(rec: Record<string, unknown>, seq: number): { from_seq: number; to_seq: number } | undefined {
  const l = rec.lost as { from_seq?: unknown; to_seq?: unknown } | undefined;
  return l && l.from_seq === seq + 1 && typeof l.to_seq === 'number' && l.to_seq >= seq + 1 ? { from_seq: l.from_seq, to_seq: l.to_seq } : undefined;
}

/** With an audit key: the log must carry a good checkpoint, and every gap record must be under one. */
function signatureBreaks(report: AuditReport, unsignedGaps: number): void {
  if (report.records > 0 && report.checkpoints.verified === 0) {
    report.breaks.push({ file: '(log)', line: 0, code: 'ERR_AUDIT_NO_CHECKPOINT', message: 'no checkpoint signed by the audit key: nothing in this log is vouched for by the key' });
  }
  if (unsignedGaps > 0) {
    report.breaks.push({ file: '(log)', line: 0, code: 'ERR_AUDIT_GAP_UNSIGNED', message: `${unsignedGaps} gap record(s) after the last checkpoint signed by the audit key: not written by the key's holder` });
  }
}

/** `<file>.torn` beside the log and their sizes. */
async function movedAside(dir: string): Promise<{ file: string; bytes: number }[]> {
  const torn = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.jsonl.torn')).sort();
  return Promise.all(torn.map(async (f) => ({ file: f, bytes: (await stat(join(dir, f))).size })));
}
