import { SeverityNumber, type LogRecord } from '@opentelemetry/api-logs';
import { lineHash } from '../audit/format.js';
import type { Attachment } from './attachments.js';

/**
 * How an audit record travels as an OpenTelemetry log record (docs/wire.md §7.1): the body is the
 * record's line exactly as written (a string, so the SHA-256 of the body is the line hash the
 * next record's `prev` names), and these attributes let a central store check completeness and
 * order per instance without parsing the body.
 */
export const ATTR = {
  instance: 'tresor.instance.id',
  seq: 'tresor.audit.seq',
  prev: 'tresor.audit.prev',
  hash: 'tresor.audit.line_sha256',
  type: 'tresor.audit.type',
  /** On a `tresor.evidence` record: the SHA-256 (hex) of the blob its body carries (base64). */
  evidence: 'tresor.evidence.sha256',
  /** On a `tresor.receipt` record: the SHA-256 (hex) of the archived receipt JWS its body carries. */
  receipt: 'tresor.receipt.jws_sha256',
} as const;

/** Event names of what travels before the records that name it: an evidence blob, an archived receipt. */
export const EVIDENCE_EVENT = 'tresor.evidence';
export const RECEIPT_EVENT = 'tresor.receipt';

/** The scope the records are emitted under. */
export const SCOPE = 'tresor-attest.audit';

/** Event names: `tresor.attestation` for attestation records, `tresor.audit.<type>` for every other. */
export const eventName = (type: string) => (type === 'attestation' ? 'tresor.attestation' : `tresor.audit.${type}`);

export interface AuditLine {
  text: string;
  seq: number;
  prev: string;
  type: string;
  time: string;
}

/** The record's own time (when it has one) and when it was exported. */
function stamps(line: AuditLine, observed: Date): Pick<LogRecord, 'timestamp' | 'observedTimestamp'> {
  const t = Date.parse(line.time);
  return { ...(Number.isFinite(t) ? { timestamp: new Date(t) } : {}), observedTimestamp: observed };
}

export function toLogRecord(line: AuditLine, instanceId: string, observed: Date): LogRecord {
  return {
    eventName: eventName(line.type),
    ...stamps(line, observed),
    severityNumber: line.type === 'gap' ? SeverityNumber.WARN : SeverityNumber.INFO,
    severityText: line.type === 'gap' ? 'WARN' : 'INFO',
    body: line.text,
    attributes: { [ATTR.instance]: instanceId, [ATTR.seq]: line.seq, [ATTR.prev]: line.prev, [ATTR.hash]: lineHash(line.text), [ATTR.type]: line.type },
  };
}

/**
 * An evidence blob (body: its bytes, base64) or an archived receipt (body: the JWS) as a log
 * record, sent in the same batch before the audit record that names it, at that record's time.
 */
export function toAttachmentRecord(a: Attachment, line: AuditLine, instanceId: string, observed: Date): LogRecord {
  return {
    eventName: a.kind === 'evidence' ? EVIDENCE_EVENT : RECEIPT_EVENT,
    ...stamps(line, observed),
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: a.kind === 'evidence' ? a.bytes.toString('base64') : a.jws,
    attributes: { [ATTR.instance]: instanceId, [a.kind === 'evidence' ? ATTR.evidence : ATTR.receipt]: a.sha256 },
  };
}
