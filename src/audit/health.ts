import type { Logger } from 'pino';
import { TresorError } from '../errors/index.js';
import type { Clock } from '../types.js';
import type { CommitHealth } from '../util/appender.js';

/** Why records cannot be made durable: the disk (or quota) is full, or any other write failure. */
export type AuditFailureCode = 'ERR_AUDIT_DISK_FULL' | 'ERR_AUDIT_WRITE_FAILED';

export interface AuditFailure {
  code: AuditFailureCode;
  /** The system error (ENOSPC, EIO, EROFS, …). */
  errno: string;
  /** Which file set failed: `audit`, `archive`, `journal`. */
  source: string;
  since: string;
}

export const failureCode = (e: unknown): AuditFailureCode => {
  const errno = (e as NodeJS.ErrnoException).code;
  return errno === 'ENOSPC' || errno === 'EDQUOT' ? 'ERR_AUDIT_DISK_FULL' : 'ERR_AUDIT_WRITE_FAILED';
};

/** A new exchange refused because its record could not be made durable (503 to the app). */
export class AuditUnavailableError extends TresorError {
  constructor(f: AuditFailure) {
    super(
      'internal',
      f.code,
      f.code === 'ERR_AUDIT_DISK_FULL'
        ? `the audit trail cannot be written (${f.errno}: disk full since ${f.since}): new exchanges are refused until records are durable again`
        : `the audit trail cannot be written (${f.errno} since ${f.since}): new exchanges are refused until records are durable again`,
    );
  }
}

/** Log a failure that lasts at most this often (the first one and the recovery are always logged). */
const REPEAT_LOG_MS = 30_000;

/**
 * Whether the audit trail (log, receipt archive, journal) can be made durable right now. Writers
 * report each failed and each successful commit; the daemon refuses new exchanges while any file
 * set is failing (audit.disk_full_action), /readyz and /status say why, metrics count.
 */
export class AuditHealth implements CommitHealth {
  private readonly failing = new Map<string, AuditFailure>();
  private lastLog = 0;
  /** Failed commits, by cause (metrics). */
  readonly failures: Record<AuditFailureCode, number> = { ERR_AUDIT_DISK_FULL: 0, ERR_AUDIT_WRITE_FAILED: 0 };
  /** Exchanges answered while their record could not be made durable (disk_full_action: serve). */
  servedUnrecorded = 0;

  constructor(
    private readonly o: { clock: Clock; logger?: Logger | undefined },
  ) {}

  /** The first failure in force, if any. */
  get failure(): AuditFailure | undefined {
    return this.failing.values().next().value;
  }

  fail(source: string, e: unknown, held: number): void {
    const code = failureCode(e);
    this.failures[code]++;
    const errno = (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    const first = !this.failing.has(source);
    if (first) this.failing.set(source, { code, errno, source, since: this.o.clock().toISOString() });
    const now = Date.now();
    if (first || now - this.lastLog >= REPEAT_LOG_MS) {
      this.lastLog = now;
      this.o.logger?.error({ code, errno, source, held, event: 'audit.unwritable' }, `audit trail NOT WRITABLE (${errno}): ${held} record(s) held in memory, retrying; new exchanges are refused unless audit.disk_full_action is serve`);
    }
  }

  ok(source: string, written: number): void {
    const f = this.failing.get(source);
    if (!f) return;
    this.failing.delete(source);
    this.o.logger?.warn({ source, since: f.since, written, event: 'audit.writable' }, `audit trail writable again: ${written} held record(s) written`);
  }
}
