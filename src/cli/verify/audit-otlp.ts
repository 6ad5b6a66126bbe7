import { readFile } from 'node:fs/promises';
import { TresorError, UsageError, VerificationError } from '../../errors/index.js';
import { auditPublicKey } from '../../audit/checkpoint.js';
import { verifyOtlpJson, type OtlpInstanceReport, type OtlpReport } from '../../fleet/verify.js';
import { createStaticJwks } from '../../receipts/jwks.js';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { pinLines, receiptsLine, trustArgs, type EvidenceArgs } from './audit-evidence.js';

/** `--audit-key` given once or more (one key per daemon, or one shared by the fleet). */
export const keyPaths = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function instanceLine(r: OtlpInstanceReport, keyed: boolean): string {
  const c = r.checkpoints;
  const signed = keyed
    ? `${c.verified} checkpoint(s) verified${c.lastSeq !== null ? `, last at seq ${c.lastSeq}, ${c.uncovered} record(s) after it` : ''}`
    : `${c.count} checkpoint(s), not checked (no --audit-key)`;
  return `instance ${r.instance}${r.service ? ` (${r.service})` : ''}: ${r.breaks.length === 0 ? 'PASS' : `FAIL ${r.breaks[0]?.code}`}, seq ${r.firstSeq}..${r.lastSeq}, ${r.records} record(s), ${r.duplicates} duplicate(s), ${r.gaps.length} gap record(s); ${signed}`;
}

/** `tresor-verify audit --otlp-json FILE...`: a collector's export of many instances' audit trails. */
export async function otlpAudit(files: string[], args: EvidenceArgs & { 'audit-key'?: string | string[]; 'jwks-file'?: string }): Promise<void> {
  let report: OtlpReport;
  const keyed = keyPaths(args['audit-key']).length > 0;
  try {
    const auditKeys = await Promise.all(keyPaths(args['audit-key']).map(async (p) => auditPublicKey(await readFile(p))));
    const trust = await trustArgs(args);
    const resolveKey = args['jwks-file'] ? (await createStaticJwks(await readFile(args['jwks-file']))).resolve : undefined;
    report = await verifyOtlpJson(files, { auditKeys, ...trust, resolveKey });
    if (report.instances.length === 0 && report.breaks.length === 0) throw new UsageError('ERR_USAGE_NO_AUDIT_FILES', `no audit records (log records with ${'tresor.instance.id'}) in ${files.join(', ')}`);
  } catch (e) {
    failInput(e, files, args.json);
    return;
  }
  const ok = report.breaks.length === 0;
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ ok, ...report, ...(ok ? {} : { error: { code: report.breaks[0]?.code, phase: 'verify', message: report.breaks[0]?.message } }) })}\n`);
  } else {
    const dups = report.instances.reduce((n, r) => n + r.duplicates, 0);
    process.stdout.write(`${ok ? 'PASS' : `FAIL ${report.breaks[0]?.code}: ${report.breaks.length} break(s)`}\n`);
    process.stdout.write(`Files:     ${report.files.length}\nInstances: ${report.instances.length}\nRecords:   ${report.logRecords} log record(s), ${dups} duplicate(s) (expected: the export is at-least-once), ${report.foreign} not audit records\n\n`);
    for (const r of report.instances) {
      process.stdout.write(`${instanceLine(r, keyed)}\n`);
      if (r.receipts) process.stdout.write(receiptsLine(r.receipts));
      process.stdout.write(`${pinLines(r.pins)}\n`);
    }
    for (const r of report.instances) for (const g of r.gaps) process.stdout.write(`gap: ${r.instance} seq ${g.seq} ${g.reason}${g.lost ? ` (seq ${g.lost.from_seq}..${g.lost.to_seq} lost)` : ''}: ${g.detail}\n`);
    for (const b of report.breaks) process.stdout.write(`break: ${b.file}:${b.line} ${b.code}: ${b.message}\n`);
  }
  process.exitCode = ok ? EXIT.ok : exitCodeFor(new VerificationError('ERR_AUDIT_CHAIN_BROKEN', '').phase);
}

/** `tresor-verify audit` could not read or parse its input: FAIL with the code, exit by phase (usage: 2). */
export function failInput(e: unknown, files: readonly string[], json: boolean): void {
  const err = e instanceof TresorError && e.phase !== 'internal' ? e : new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read ${files.join(', ')}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  process.stdout.write(json ? `${JSON.stringify({ ok: false, error: { code: err.code, phase: err.phase, message: err.message } })}\n` : `FAIL ${err.code}: ${err.message}\n`);
  process.exitCode = err instanceof UsageError ? EXIT.usage : exitCodeFor(err.phase);
}
