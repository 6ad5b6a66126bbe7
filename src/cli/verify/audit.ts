import type { Argv, CommandModule } from 'yargs';
import { readFile } from 'node:fs/promises';
import { UsageError, VerificationError } from '../../errors/index.js';
import { formatNotPassed, reviewVerdicts } from '../../audit/checks.js';
import { recheckArchivedReceipts, type RecheckReport } from '../../receipts/recheck.js';
import { createStaticJwks } from '../../receipts/jwks.js';
import { verifyAuditFiles, type AuditReport } from '../../audit/verify.js';
import { auditPublicKey } from '../../audit/checkpoint.js';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { failInput, keyPaths, otlpAudit } from './audit-otlp.js';
import { evidenceAudit, pinLines, receiptsLine, trustArgs, type EvidenceArgs } from './audit-evidence.js';
import { checkPins, type PinReport } from '../../envelope/audit-pins.js';

interface AuditArgs extends EvidenceArgs {
  files?: string[];
  'otlp-json'?: string[];
  'jwks-file'?: string;
  'audit-key'?: string | string[];
}

function table(title: string, rows: Record<string, Record<string, number>>): string {
  const verdicts = [...new Set(Object.values(rows).flatMap((r) => Object.keys(r)))].sort();
  const keys = Object.keys(rows).sort();
  const w = Math.max(title.length, ...keys.map((k) => k.length));
  const head = `${title.padEnd(w)}  ${verdicts.map((v) => v.padStart(10)).join(' ')}`;
  return [head, ...keys.map((k) => `${k.padEnd(w)}  ${verdicts.map((v) => String(rows[k]?.[v] ?? 0).padStart(10)).join(' ')}`)].join('\n');
}

/** What the chain can and cannot vouch for: signed checkpoints, recorded gaps, tails moved aside at a start. */
function trustLines(r: AuditReport, keyed: boolean): string {
  const c = r.checkpoints;
  const lines = [
    keyed
      ? `Signed:   ${c.verified} checkpoint(s) verified with the audit key${c.lastSeq !== null ? `, last at seq ${c.lastSeq}; ${c.uncovered} record(s) after it not yet covered` : ''}`
      : `Signed:   ${c.count} checkpoint(s), not checked (no --audit-key): the chain alone does not show a rewrite by someone with write access`,
    `Gaps:     ${r.gaps.length}${r.gaps.length ? ' (records lost, recorded in the chain)' : ''}`,
    ...r.gaps.map((g) => `gap: ${g.file}:${g.line} seq ${g.seq} ${g.reason}${g.lost ? ` (seq ${g.lost.from_seq}..${g.lost.to_seq} lost)` : ''}: ${g.detail}`),
    ...r.movedAside.map((m) => `moved aside: ${m.file} (${m.bytes} bytes cut off the end of the log at a start: a write cut short by a crash, or a malformed line)`),
  ];
  return lines.join('\n');
}

export const auditCommand: CommandModule<object, AuditArgs> = {
  command: 'audit [files..]',
  describe: "Re-verify an audit log's hash chain across rotated files (a directory means all its audit files) and the evidence archived for each pin, or with --otlp-json a collector's export of many daemons' trails",
  builder: (y: Argv) =>
    y
      .positional('files', { type: 'string', array: true, describe: 'Audit files or the audit directory' })
      .option('otlp-json', { type: 'string', array: true, describe: "An OpenTelemetry Collector's file-exporter output (OTLP/JSON lines): check every instance's chain, gaps, duplicates and checkpoints, and re-verify its pins and receipts from the evidence and receipts the export carries (with --release-root, --test-roots, --jwks-file as for a state dir)" })
      .option('jwks-file', { type: 'string', describe: "The router's JWKS (saved to a file): also re-verify every archived receipt offline; a verified record without an archived receipt is a break" })
      .option('audit-key', { type: 'string', describe: "The daemon's audit public key (PEM, audit.pub beside the log): check every signed checkpoint; the log must carry one. With --otlp-json, once per key of the fleet" })
      .option('release-root', { type: 'string', describe: "Pinned release-root public key: re-verify every archived tresor pin's evidence at its own time (without it: checked against its hashes only, reported as skipped); aci, near and pinaivu pins need none" })
      .option('test-roots', { type: 'string', describe: "PEM test roots (the simulator's) the archived evidence may chain to besides the pinned vendor roots; only when given" })
      .option('evidence', { type: 'string', describe: 'Print one archived pin (its evidence id) verified again at its own time, like tresor-verify attest' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }) as Argv<AuditArgs>,
  handler: async (args) => {
    const otlp = [...(args['otlp-json'] ?? []), ...(args['otlp-json'] ? (args.files ?? []) : [])];
    if (otlp.length > 0 && args.evidence === undefined) return otlpAudit(otlp, args);
    const files = args['otlp-json'] ? [] : (args.files ?? []);
    if (args.evidence !== undefined && !args['otlp-json']) return evidenceAudit(files, { ...args, evidence: args.evidence });
    const keys = keyPaths(args['audit-key']);
    const misuse =
      args['otlp-json'] !== undefined && args.evidence !== undefined
        ? '--evidence ID reads one pin from a state dir, not from --otlp-json'
        : files.length === 0
          ? 'name the audit files or directory, or --otlp-json FILE...'
          : keys.length > 1
            ? "--audit-key is given once for one daemon's log (several only with --otlp-json)"
            : undefined;
    if (misuse) {
      const err = new UsageError('ERR_USAGE_BAD_FLAG', misuse);
      process.stdout.write(args.json ? `${JSON.stringify({ ok: false, error: { code: err.code, phase: err.phase, message: err.message } })}\n` : `FAIL ${err.code}: ${err.message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    let report: AuditReport;
    let receipts: RecheckReport | undefined;
    let review: Awaited<ReturnType<typeof reviewVerdicts>>;
    let pins: PinReport;
    try {
      const trust = await trustArgs(args);
      const auditKey = keys[0] ? auditPublicKey(await readFile(keys[0])) : undefined;
      report = await verifyAuditFiles(files, auditKey ? { auditKey } : {});
      if (report.files.length === 0) throw new UsageError('ERR_USAGE_NO_AUDIT_FILES', 'no audit files found');
      if (args['jwks-file']) {
        const jwks = await createStaticJwks(await readFile(args['jwks-file']));
        receipts = await recheckArchivedReceipts(report.files, jwks.resolve);
        report.breaks.push(...receipts.breaks);
      }
      review = await reviewVerdicts(report.files, { requireArchivedReceipt: args['jwks-file'] !== undefined });
      report.breaks.push(...review.breaks);
      pins = await checkPins(report.files, trust);
      report.breaks.push(...pins.breaks);
    } catch (e) {
      failInput(e, files, args.json);
      return;
    }
    const ok = report.breaks.length === 0;
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ ok, ...report, ...(receipts ? { receipts: { checked: receipts.checked, confirmed: receipts.confirmed } } : {}), checks_not_passed: review.notPassed, pins: { pins: pins.pins, receipts: pins.receipts, ...(pins.skipped ? { skipped: pins.skipped } : {}) }, ...(ok ? {} : { error: { code: report.breaks[0]?.code, phase: 'verify', message: report.breaks[0]?.message } }) })}\n`);
    } else {
      process.stdout.write(`${ok ? 'PASS' : `FAIL ${report.breaks[0]?.code}: ${report.breaks.length} break(s) in the chain`}\n`);
      process.stdout.write(`Files:    ${report.files.length}\nRecords:  ${report.records} (last seq ${report.lastSeq})\n`);
      if (receipts) process.stdout.write(receiptsLine(receipts));
      process.stdout.write(`${trustLines(report, args['audit-key'] !== undefined)}\n`);
      process.stdout.write(pinLines(pins));
      process.stdout.write('\n');
      process.stdout.write(`${table('route', report.byRoute)}\n\n${table('day', report.byDay)}\n\n${formatNotPassed(review.notPassed)}`);
      for (const b of report.breaks) process.stdout.write(`break: ${b.file}:${b.line} ${b.code}: ${b.message}\n`);
    }
    process.exitCode = ok ? EXIT.ok : exitCodeFor(new VerificationError('ERR_AUDIT_CHAIN_BROKEN', '').phase);
  },
};
