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
  readonly records: Record<string, unknown>[] = [];

  constructor(private readonly max = 1_000) {}

  async append(record: Record<string, unknown>, _opts?: { urgent?: boolean }): Promise<{ seq: number }> {
    this.seq += 1;
    this.records.push({ seq: this.seq, ...record });
    if (this.records.length > this.max) this.records.shift();
    return { seq: this.seq };
  }

  async close(): Promise<void> {}
}
