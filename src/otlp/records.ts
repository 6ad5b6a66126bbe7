import { SeverityNumber, type LogRecord } from '@opentelemetry/api-logs';
import { lineHash } from '../audit/format.js';

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
} as const;

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

export function toLogRecord(line: AuditLine, instanceId: string, observed: Date): LogRecord {
  const t = Date.parse(line.time);
  return {
    eventName: eventName(line.type),
    ...(Number.isFinite(t) ? { timestamp: new Date(t) } : {}),
    observedTimestamp: observed,
    severityNumber: line.type === 'gap' ? SeverityNumber.WARN : SeverityNumber.INFO,
    severityText: line.type === 'gap' ? 'WARN' : 'INFO',
    body: line.text,
    attributes: { [ATTR.instance]: instanceId, [ATTR.seq]: line.seq, [ATTR.prev]: line.prev, [ATTR.hash]: lineHash(line.text), [ATTR.type]: line.type },
  };
}
