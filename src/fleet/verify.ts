import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { keySha256 } from '../audit/checkpoint.js';
import { GENESIS, lineHash } from '../audit/format.js';
import { ChainWalk, type AuditBreak, type AuditReport } from '../audit/verify.js';
import { jwsSha256 } from '../audit/archive.js';
import { blobSha256, ID_RE } from '../audit/evidence.js';
import { ATTR } from '../otlp/records.js';
import { replayInstance, type ReplayOptions, type ReplayReport } from './replay.js';

/** One instance's chain as found in a collector's export. */
export interface OtlpInstanceReport {
  instance: string;
  service: string | undefined;
  /** Distinct records (by seq). */
  records: number;
  /** Records received more than once with the same bytes: expected (the exporter sends at least once). */
  duplicates: number;
  firstSeq: number;
  lastSeq: number;
  gaps: AuditReport['gaps'];
  checkpoints: AuditReport['checkpoints'];
  /** Its pins and receipts re-verified from the evidence and receipts in the export (§7.1). */
  pins: ReplayReport['pins'];
  receipts?: ReplayReport['receipts'];
  breaks: AuditBreak[];
}

export interface OtlpReport {
  files: string[];
  /** Log records read (with duplicates), and those that are not audit records (no instance attribute). */
  logRecords: number;
  foreign: number;
  instances: OtlpInstanceReport[];
  /** Problems not tied to one instance (unreadable lines), then every instance's breaks. */
  breaks: AuditBreak[];
}

interface Received {
  text: string;
  file: string;
  line: number;
}

type Json = Record<string, unknown>;
interface Instance {
  service: string | undefined;
  seqs: Map<number, Received>;
  duplicates: number;
  evidence: Map<string, Buffer>;
  receipts: Map<string, string>;
  breaks: AuditBreak[];
}

const list = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);

/** An OTLP/JSON AnyValue as the collector writes it (int64 as a string or a number). */
function anyValue(v: unknown): string | number | undefined {
  const a = v as { stringValue?: unknown; intValue?: unknown } | undefined;
  if (typeof a?.stringValue === 'string') return a.stringValue;
  if (typeof a?.intValue === 'number') return a.intValue;
  if (typeof a?.intValue === 'string' && /^-?\d+$/.test(a.intValue)) return Number(a.intValue);
  return undefined;
}

function attributes(v: unknown): Map<string, string | number | undefined> {
  return new Map(list(v).map((kv) => [String(kv.key), anyValue(kv.value)]));
}

/**
 * Re-verify the audit trails of many instances from a collector's file-exporter output (OTLP/JSON,
 * one ExportLogsServiceRequest per line; docs/wire.md §7.1). Each log record's body must hash to
 * its line-hash attribute and agree with its seq and prev attributes; records are grouped by
 * instance, duplicates (same seq, same bytes) are counted, two different records at one seq are a
 * break, and each instance's chain is walked in seq order with the same checks as the files
 * (gaps, checkpoints, signatures with the audit keys given). Then each instance's pins and receipts
 * are re-verified from the evidence blobs and archived receipts the export carries (replay.ts).
 */
export async function verifyOtlpJson(files: readonly string[], opts: { auditKeys?: readonly KeyObject[] } & ReplayOptions = {}): Promise<OtlpReport> {
  const report: OtlpReport = { files: [...files], logRecords: 0, foreign: 0, instances: [], breaks: [] };
  const byInstance = new Map<string, Instance>();
  for (const file of files) {
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.forEach((text, i) => {
      if (text.trim() === '') return;
      let req: Json;
      try {
        req = JSON.parse(text) as Json;
      } catch {
        report.breaks.push({ file: basename(file), line: i + 1, code: 'ERR_AUDIT_OTLP_MALFORMED', message: 'not an OTLP/JSON export request' });
        return;
      }
      for (const rl of list(req.resourceLogs)) {
        const service = attributes((rl.resource as Json | undefined)?.attributes).get('service.name');
        for (const sl of list(rl.scopeLogs)) {
          for (const lr of list(sl.logRecords)) {
            report.logRecords += 1;
            const at = { file: basename(file), line: i + 1 };
            const attrs = attributes(lr.attributes);
            const instance = attrs.get(ATTR.instance);
            if (typeof instance !== 'string') {
              report.foreign += 1;
              continue;
            }
            const inst: Instance = byInstance.get(instance) ?? { service: typeof service === 'string' ? service : undefined, seqs: new Map(), duplicates: 0, evidence: new Map(), receipts: new Map(), breaks: [] };
            byInstance.set(instance, inst);
            if (attrs.has(ATTR.evidence) || attrs.has(ATTR.receipt)) {
              const problem = attachment(lr, attrs, inst);
              if (problem) inst.breaks.push({ ...at, ...problem });
              continue;
            }
            const problem = recordProblem(lr, attrs);
            if (problem) {
              inst.breaks.push({ ...at, ...problem });
              continue;
            }
            const body = anyValue(lr.body) as string;
            const seq = attrs.get(ATTR.seq) as number;
            const seen = inst.seqs.get(seq);
            if (!seen) inst.seqs.set(seq, { text: body, ...at });
            else if (seen.text === body) inst.duplicates += 1;
            else inst.breaks.push({ ...at, code: 'ERR_AUDIT_OTLP_CONFLICT', message: `instance ${instance} sent two different records with seq ${seq} (the other at ${seen.file}:${seen.line})` });
          }
        }
      }
    });
  }
  for (const [instance, inst] of [...byInstance].sort((a, b) => a[0].localeCompare(b[0]))) {
    report.instances.push(await checkInstance(instance, inst, opts));
  }
  report.breaks.push(...report.instances.flatMap((r) => r.breaks));
  return report;
}

/**
 * Keep an evidence blob (body base64) or an archived receipt (body the JWS) under the hash its
 * attribute names; of copies that differ, one that hashes to its name. A copy that does not is
 * kept too (when no other is): re-verification then reports it with the state dir's code.
 */
function attachment(lr: Json, attrs: Map<string, string | number | undefined>, inst: Instance): { code: string; message: string } | undefined {
  const body = anyValue(lr.body);
  const ev = attrs.get(ATTR.evidence);
  const sha = ev ?? attrs.get(ATTR.receipt);
  if (typeof body !== 'string' || typeof sha !== 'string' || !ID_RE.test(sha)) {
    return { code: 'ERR_AUDIT_OTLP_MALFORMED', message: `a ${ev !== undefined ? 'tresor.evidence' : 'tresor.receipt'} log record without a string body and a SHA-256 (64 lowercase hex) in ${ev !== undefined ? ATTR.evidence : ATTR.receipt}` };
  }
  if (ev !== undefined) {
    const bytes = Buffer.from(body, 'base64');
    if (!inst.evidence.has(sha) || blobSha256(bytes) === sha) inst.evidence.set(sha, bytes);
  } else if (!inst.receipts.has(sha) || jwsSha256(body) === sha) {
    inst.receipts.set(sha, body);
  }
  return undefined;
}

/** One instance: its chain walked, then its pins and receipts re-verified from what the export carries. */
async function checkInstance(instance: string, inst: Instance, opts: { auditKeys?: readonly KeyObject[] } & ReplayOptions): Promise<OtlpInstanceReport> {
  const walked = walkInstance(instance, inst, opts.auditKeys);
  const records = [...inst.seqs].sort((a, b) => a[0] - b[0]).map(([, r]) => r);
  const replay = await replayInstance({ records, evidence: inst.evidence, receipts: inst.receipts }, opts);
  return { ...walked, pins: replay.pins, ...(replay.receipts ? { receipts: replay.receipts } : {}), breaks: [...walked.breaks, ...replay.breaks] };
}

/** Why one log record is no faithful copy of an audit line (undefined when it is). */
function recordProblem(lr: Json, attrs: Map<string, string | number | undefined>): { code: string; message: string } | undefined {
  const body = anyValue(lr.body);
  const seq = attrs.get(ATTR.seq);
  if (typeof body !== 'string' || typeof seq !== 'number' || typeof attrs.get(ATTR.prev) !== 'string' || typeof attrs.get(ATTR.hash) !== 'string') {
    return { code: 'ERR_AUDIT_OTLP_MALFORMED', message: `a log record without a string body and the ${ATTR.seq}, ${ATTR.prev} and ${ATTR.hash} attributes` };
  }
  if (lineHash(body) !== attrs.get(ATTR.hash)) return { code: 'ERR_AUDIT_OTLP_HASH_MISMATCH', message: `the body of seq ${seq} does not hash to its ${ATTR.hash} attribute (changed on the way)` };
  let rec: Json;
  try {
    rec = JSON.parse(body) as Json;
  } catch {
    return { code: 'ERR_AUDIT_MALFORMED_LINE', message: `the body of seq ${seq} is not a JSON record` };
  }
  if (rec.seq !== seq || rec.prev !== attrs.get(ATTR.prev)) return { code: 'ERR_AUDIT_OTLP_ATTRIBUTE_MISMATCH', message: `the attributes of seq ${seq} do not match its body's seq and prev` };
  return undefined;
}

function walkInstance(instance: string, inst: Instance, keys: readonly KeyObject[] | undefined): Omit<OtlpInstanceReport, 'pins' | 'receipts'> {
  const seqs = [...inst.seqs.keys()].sort((a, b) => a - b);
  const byKey = new Map((keys ?? []).map((k) => [keySha256(k), k]));
  const first = seqs[0] ?? 0;
  // An export that does not start at seq 1 is walked from its first record's prev, and says so as a break.
  const start = first > 1 ? { seq: first - 1, hash: (JSON.parse((inst.seqs.get(first) as Received).text) as { prev: string }).prev } : { seq: 0, hash: GENESIS };
  const walk = new ChainWalk(start, keys && keys.length > 0 ? { keyFor: (rec) => byKey.get(String(rec.key_sha256)) } : {});
  if (first > 1) walk.brk(instance, 0, 'ERR_AUDIT_OTLP_START', `the export of instance ${instance} starts at seq ${first}: records 1..${first - 1} are not in it`);
  // Missing seqs show up in the walk as ERR_AUDIT_SEQ_GAP / ERR_AUDIT_CHAIN_BROKEN, like a deleted record in a file.
  for (const seq of seqs) {
    const r = inst.seqs.get(seq) as Received;
    walk.line(r.file, r.line, r.text);
  }
  const chain = walk.finish();
  return {
    instance,
    service: inst.service,
    records: seqs.length,
    duplicates: inst.duplicates,
    firstSeq: first,
    lastSeq: chain.lastSeq,
    gaps: chain.gaps,
    checkpoints: chain.checkpoints,
    breaks: [...inst.breaks, ...chain.breaks],
  };
}
