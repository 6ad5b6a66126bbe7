import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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
export async function verifyAuditFiles(paths: readonly string[]): Promise<AuditReport> {
  const files = await collectAuditFiles(paths);
  const report: AuditReport = { files, records: 0, lastSeq: 0, breaks: [], byRoute: {}, byDay: {} };
  const dir = files[0] ? dirname(files[0]) : undefined;
  const readJson = async (name: string) => (dir ? ((await readFile(join(dir, name), 'utf8').then(JSON.parse).catch(() => undefined)) as { seq: number; hash: string } | undefined) : undefined);
  const anchor = await readJson('audit.anchor');
  const head = await readJson('audit.head');
  let prev = anchor?.hash ?? GENESIS;
  let hashAtHead: string | undefined;
  let seq = anchor?.seq ?? 0;
  const brk = (file: string, line: number, code: string, message: string) => report.breaks.push({ file: basename(file), line, code, message });
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) brk(file, text.split('\n').length, 'ERR_AUDIT_TORN_LINE', 'the file ends in a partial line');
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    lines.forEach((line, i) => {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        brk(file, i + 1, 'ERR_AUDIT_MALFORMED_LINE', 'not a JSON record');
        prev = lineHash(line);
        return;
      }
      if (rec.prev !== prev) brk(file, i + 1, 'ERR_AUDIT_CHAIN_BROKEN', `prev does not match the previous record (edited, deleted or reordered before this line)`);
      if (rec.seq !== seq + 1) brk(file, i + 1, 'ERR_AUDIT_SEQ_GAP', `expected seq ${seq + 1}, found ${String(rec.seq)}`);
      seq = typeof rec.seq === 'number' ? rec.seq : seq + 1;
      prev = lineHash(line);
      if (head && seq === head.seq) hashAtHead = prev;
      report.records += 1;
      const verdict = typeof rec.verdict === 'string' ? rec.verdict : 'unknown';
      const route = typeof rec.route_requested === 'string' ? rec.route_requested : '(none)';
      const day = typeof rec.time === 'string' ? rec.time.slice(0, 10) : '(no time)';
      const bump = (t: Record<string, Record<string, number>>, k: string) => ((t[k] ??= {})[verdict] = (t[k]?.[verdict] ?? 0) + 1);
      bump(report.byRoute, route);
      bump(report.byDay, day);
    });
  }
  report.lastSeq = seq;
  // The head is written after the records it names are durable, so it may lag (a live log, or a
  // crash between the two writes); it may never be ahead of the files or disagree at its own seq.
  if (head && (head.seq > seq || (hashAtHead !== undefined && head.hash !== hashAtHead))) {
    const message =
      head.seq > seq
        ? `audit.head records seq ${head.seq}, the files end at seq ${seq}: records were removed from the end`
        : `audit.head records another hash for seq ${head.seq}: the tail was rewritten`;
    report.breaks.push({ file: 'audit.head', line: 0, code: 'ERR_AUDIT_TRUNCATED', message });
  }
  return report;
}
