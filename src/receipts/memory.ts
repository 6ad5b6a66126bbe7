import { createHash } from 'node:crypto';
import type { Appended } from '../audit/log.js';
import type { ReceiptJob } from './journal.js';

/**
 * The receipt pipeline's journal and audit log when no state directory is given (the library
 * without `stateDir`): the same interfaces, kept in memory, gone with the process. Nothing is
 * durable, so nothing resumes after a crash; verdicts still reach the app (callback, verdictFor).
 */
export class MemoryJournal {
  private readonly jobs = new Map<string, ReceiptJob>();

  get size(): number {
    return this.jobs.size;
  }

  /** Nothing waits for a disk here. */
  readonly held = 0;

  async add(job: ReceiptJob): Promise<void> {
    this.jobs.set(job.job, job);
  }

  async done(jobId: string): Promise<void> {
    this.jobs.delete(jobId);
  }

  async close(): Promise<void> {}
}

/** The last `max` records, numbered like the audit log's `seq`. */
export class MemoryAuditLog {
  private seq = 0;
  private hash = '0'.repeat(64);
  readonly records: Record<string, unknown>[] = [];

  /** Nothing waits for a disk, nothing was recovered, nothing is signed: memory only. */
  readonly held = 0;
  readonly recovered: { tornBytes: number; movedAside: never[] } = { tornBytes: 0, movedAside: [] };
  readonly lastCheckpointSeq = null;

  constructor(private readonly max = 1_000) {}

  get head(): { seq: number; hash: string; file: string } {
    return { seq: this.seq, hash: this.hash, file: '' };
  }

  async append(record: Record<string, unknown>, _opts?: { urgent?: boolean }): Promise<Appended> {
    this.seq += 1;
    const entry = { seq: this.seq, prev: this.hash, ...record };
    // Chained like the log's lines, so a record's hash names it; nothing here outlives the process.
    const line = JSON.stringify(entry);
    this.hash = createHash('sha256').update(line).digest('hex');
    this.records.push(entry);
    if (this.records.length > this.max) this.records.shift();
    return { seq: this.seq, hash: this.hash, line };
  }

  async close(): Promise<void> {}
}
