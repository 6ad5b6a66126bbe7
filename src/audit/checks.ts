import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Check } from '../checks/check.js';
import type { AuditBreak } from './verify.js';

/** One kind of check that was not `pass`, over the receipt records of an audit log. */
export interface CheckNotPassed {
  name: string;
  result: string;
  code?: string;
  /** Receipt records with this check in this state. */
  records: number;
  /** The first record's detail (the reason), as an example. */
  detail?: string;
}

/**
 * What `tresor-verify audit` adds to the chain check about the verdicts themselves: every check
 * that was not `pass` (counted by name, result and code, so that a `verified` that rests on
 * skipped or informational checks says so), and, when receipts are re-verified (`--jwks-file`),
 * a break for each `verified` record that names no archived receipt: nothing could confirm it.
 */
export async function reviewVerdicts(files: readonly string[], opts: { requireArchivedReceipt: boolean }): Promise<{ notPassed: CheckNotPassed[]; breaks: AuditBreak[] }> {
  const counts = new Map<string, CheckNotPassed>();
  const breaks: AuditBreak[] = [];
  for (const file of files) {
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      let rec: { type?: unknown; verdict?: unknown; checks?: unknown; receipt_jws_sha256?: unknown };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return; // the chain check reports it
      }
      if (rec?.type !== 'receipt') return;
      if (opts.requireArchivedReceipt && rec.verdict === 'verified' && typeof rec.receipt_jws_sha256 !== 'string') {
        breaks.push({ file: basename(file), line: i + 1, code: 'ERR_AUDIT_RECEIPT_MISSING', message: 'recorded verified, but the record names no archived receipt (receipt_jws_sha256): nothing can confirm it' });
      }
      for (const c of Array.isArray(rec.checks) ? (rec.checks as Check[]) : []) {
        if (c?.result === 'pass') continue;
        const key = `${c.name}\u0000${c.result}\u0000${c.code ?? ''}`;
        const seen = counts.get(key);
        if (seen) seen.records++;
        else counts.set(key, { name: String(c.name), result: String(c.result), ...(c.code ? { code: c.code } : {}), records: 1, ...(c.detail ? { detail: String(c.detail) } : {}) });
      }
    });
  }
  return { notPassed: [...counts.values()].sort((a, b) => a.name.localeCompare(b.name) || a.result.localeCompare(b.result)), breaks };
}

/** The text lines `tresor-verify audit` prints for them. */
export function formatNotPassed(list: readonly CheckNotPassed[]): string {
  if (list.length === 0) return 'Checks not passed: none\n';
  return `Checks not passed:\n${list.map((c) => `  ${c.name}: ${c.result}${c.code ? ` ${c.code}` : ''} in ${c.records} record(s)${c.detail ? ` (e.g. ${c.detail})` : ''}`).join('\n')}\n`;
}
