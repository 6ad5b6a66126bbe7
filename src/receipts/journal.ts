import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GroupAppender, type DurabilityOptions } from '../util/appender.js';
import { frozenJson } from '../util/frozen-json.js';

/**
 * What the daemon must remember about one exchange to finish its receipt verdict after a crash.
 * Never secrets: no API key, no body, only digests and the `tresor` block the app received.
 */
export interface ReceiptJob {
  job: string;
  upstream: string;
  request_id: string;
  method: string;
  /** Path without the query. */
  route: string;
  status: number;
  started_at: string;
  ended_at: string;
  /** The exchange completed (false: client abort or upstream failure mid-body). */
  complete: boolean;
  error?: string;
  opted_out: boolean;
  /** The receipt id exactly as found in the response (validated when the job runs). */
  receipt_id?: unknown;
  tresor?: { requested_route?: string; routed_model?: string; failover?: boolean };
  extract_error?: string;
  request_sha256: string;
  response_sha256: string;
  request_bytes: number;
  response_bytes: number;
  /** The app sent its own Authorization (kept in memory only; lost on restart). */
  app_key: boolean;
  attestation?: Record<string, unknown>;
}

/** `commitWindowMs`: how long a non-urgent `done` may wait for a job's commit to share (default 0: the next tick). */
export type JournalOptions = DurabilityOptions & { commitWindowMs?: number };

type Entry = { op: 'job'; job: ReceiptJob } | { op: 'done'; job: string };

/** Start a new journal generation when the current file has grown past this. */
const COMPACT_BYTES = 4 * 1024 * 1024;
const FILE_RE = /^journal-(\d{1,12})\.jsonl$/;
const fileOf = (gen: number) => `journal-${gen}.jsonl`;

/**
 * A job's journal line, `JSON.stringify({ op: 'job', job })` byte for byte. Its pin's summary (one
 * frozen object per pin: proxy/receipts.ts) is usually its last member, with its text made once
 * (util/frozen-json.ts): then the rest is serialised without it (a member set to undefined is left
 * out, and put back at once) and the summary's text goes in before the closing braces, which saves
 * serialising ~470 of a line's ~1,160 bytes per job. Any other job is serialised whole.
 */
export function jobLine(job: ReceiptJob): string {
  const a = job.attestation;
  const text = a && frozenJson(a);
  if (text === undefined || !lastMemberIs(job, 'attestation')) return JSON.stringify({ op: 'job', job });
  job.attestation = undefined;
  try {
    return `${JSON.stringify({ op: 'job', job }).slice(0, -2)},"attestation":${text}}}`;
  } finally {
    job.attestation = a;
  }
}

/** Whether `name` is the last of `o`'s enumerable members (the last one JSON.stringify writes). */
function lastMemberIs(o: object, name: string): boolean {
  let last: string | undefined;
  for (const key in o) last = key;
  return last === name;
}

/**
 * The receipt journal: append-only JSON Lines of `job` and `done` entries, group-committed with
 * fdatasync. A job is durable before the app sees the end of its response; after a crash the
 * jobs without `done` are pending. A torn last line (crash mid-write) is ignored. The journal is
 * compacted into a new generation file (the pending jobs only) once it grows; a crash during
 * that leaves two generations, which are merged on open.
 */
export class ReceiptJournal {
  private appender: GroupAppender;
  private readonly jobs = new Map<string, ReceiptJob>();
  private compacting = false;

  private constructor(
    private readonly dir: string,
    private gen: number,
    private readonly durability: JournalOptions,
  ) {
    this.appender = this.newAppender();
  }

  /**
   * A journal file that reports to `durability.health`; removed while open (with its directory),
   * it is recreated holding every pending job again.
   */
  private newAppender(): GroupAppender {
    return new GroupAppender(join(this.dir, fileOf(this.gen)), {
      ...this.durability,
      source: 'journal',
      onRecreated: (path) => {
        this.durability.onRecreated?.(path);
        return [...this.jobs.values()].map(jobLine);
      },
    });
  }

  static async open(dir: string, durability: JournalOptions = {}): Promise<{ journal: ReceiptJournal; pending: ReceiptJob[] }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const gens = (await readdir(dir))
      .map((f) => FILE_RE.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    const jobs = new Map<string, ReceiptJob>();
    for (const g of gens) {
      const text = await readFile(join(dir, fileOf(g)), 'utf8');
      for (const line of text.split('\n')) {
        if (!line) continue;
        let e: Entry;
        try {
          e = JSON.parse(line) as Entry;
        } catch {
          continue; // a torn last line
        }
        if (e.op === 'job' && typeof e.job?.job === 'string') jobs.set(e.job.job, e.job);
        else if (e.op === 'done') jobs.delete(e.job);
      }
    }
    const journal = new ReceiptJournal(dir, (gens.at(-1) ?? 0) + 1, durability);
    await Promise.all([...jobs.values()].map((j) => journal.add(j)));
    await journal.appender.touch();
    for (const g of gens) await rm(join(dir, fileOf(g)));
    return { journal, pending: [...jobs.values()] };
  }

  get size(): number {
    return this.jobs.size;
  }

  /** Entries appended and not yet durable (held while writing fails). */
  get held(): number {
    return this.appender.held;
  }

  /** Resolves once the job is durable. */
  add(job: ReceiptJob): Promise<void> {
    this.jobs.set(job.job, job);
    return this.appender.append(jobLine(job));
  }

  /**
   * Mark a job finished (its audit record is durable). Not synced on its own: a `done` lost in a
   * crash only makes recovery look the job up in the audit log, where its record already is. So,
   * unless `urgent` (someone waits for it), it waits up to the commit window to share the next
   * job's write instead of a write (and three stat calls) of its own.
   */
  done(jobId: string, o: { urgent?: boolean } = {}): Promise<void> {
    this.jobs.delete(jobId);
    // One promise (the append's, chained once), not an async frame awaiting it.
    return this.appender.append(`{"op":"done","job":${JSON.stringify(jobId)}}`, { durable: false, urgent: o.urgent !== false }).then(this.compactIfGrown);
  }

  /** Once the file has grown past COMPACT_BYTES (checked after each `done`). */
  private readonly compactIfGrown = (): Promise<void> | undefined => (!this.compacting && this.appender.written > COMPACT_BYTES ? this.compact() : undefined);

  async close(): Promise<void> {
    await this.appender.close();
  }

  /** Move the pending jobs into a new generation file, then drop the old one. */
  private async compact(): Promise<void> {
    this.compacting = true;
    try {
      const old = this.appender;
      this.gen += 1;
      this.appender = this.newAppender();
      await Promise.all([...this.jobs.values()].map((j) => this.appender.append(jobLine(j))));
      await this.appender.touch();
      await old.close();
      await rm(old.path);
    } finally {
      this.compacting = false;
    }
  }
}
