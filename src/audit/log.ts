import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { VerificationError } from '../errors/index.js';
import type { Clock } from '../types.js';
import { commitAppend, CommitScheduler, DEFAULT_RETRY_MS, FileRemovedError, linesToBytes } from '../util/appender.js';
import type { CheckpointSigner } from './checkpoint.js';
import { dayOf, FILE_RE, fileName, GENESIS, lineHash, serialise } from './format.js';
import type { AuditHealth } from './health.js';
import { auditFiles, chainTail, headProblem, readChainPoint, type HeadProblem, type MovedAside } from './recover.js';

/** Longest time `audit.head` may trail the records. */
const HEAD_INTERVAL_MS = 200;

export interface AuditLogOptions {
  dir: string;
  clock: Clock;
  /** Rotate when a file would exceed this (default 16 MiB). Files also rotate at each UTC day. */
  maxFileBytes?: number;
  /** Keep at most this many files (default 30); the pruned chain head is kept in `audit.anchor`. */
  retentionFiles?: number;
  /** How long a non-urgent append may wait for others to share its fdatasync (default 0: the next tick). */
  commitWindowMs?: number;
  /** Told of every failed commit and of the first one that works again. */
  health?: AuditHealth | undefined;
  /** Wait between tries of a commit that failed (default 1000 ms). */
  retryMs?: number;
  /** Signs checkpoints every `checkpointIntervalMs` (default 300 s) and at close. */
  signer?: CheckpointSigner | undefined;
  checkpointIntervalMs?: number;
  /** Told after retention removed files (the evidence archive prunes what they alone named). */
  onPruned?: (() => void) | undefined;
  /** Record a disagreement with `audit.head` as a chained gap record instead of refusing to open (`tresor-attest audit repair`). */
  repair?: boolean;
  logger?: Logger | undefined;
}

/** What a queued append becomes: the record's fields, or built at commit from the chain position it lands on. */
type RecordSource = Record<string, unknown> | ((at: { seq: number; prev: string; time: Date }) => Record<string, unknown>);

/** A durable record: its seq, the hash of its line, and the line itself (the record as serialised, without its newline). */
export interface Appended {
  seq: number;
  hash: string;
  line: string;
}

interface Pending {
  record: RecordSource;
  urgent: boolean;
  resolve: (r: Appended) => void;
  reject: (e: unknown) => void;
}

/** The log disagrees with `audit.head` and was opened without `repair`: the daemon refuses to start. */
export class AuditHeadMismatchError extends VerificationError {
  constructor(dir: string, p: HeadProblem) {
    super('ERR_AUDIT_HEAD_MISMATCH', `the audit log in ${dir} does not match audit.head (${p.reason}): ${p.detail}. Refusing to start; \`tresor-attest audit repair\` records the loss as a gap record in the chain and lets the daemon start`, {
      detail: { reason: p.reason, ...(p.lost ? { lost: p.lost } : {}) },
    });
  }
}

/**
 * Append-only, hash-chained JSON Lines audit log. Appends made within one tick (or, when not
 * urgent, within the commit window) are written with one write and one fdatasync (group commit);
 * `append` resolves once its record is durable. Files are 0600 in a 0700 directory; `audit.head`
 * holds the last seq and hash so that a truncated tail is detectable, and is checked at open.
 * The chain (seq, prev) advances only after a commit is durable: a failed or short write is cut
 * back and its records are held, in order, and written when writing works again.
 */
export class AuditLog {
  private fh: FileHandle | undefined;
  private file = '';
  private size = 0;
  private day = '';
  private index = 0;
  private seq = 0;
  private prev = GENESIS;
  private queue: Pending[] = [];
  private readonly scheduler: CommitScheduler;
  private headTimer: NodeJS.Timeout | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private headWrite: Promise<void> = Promise.resolve();
  private closing = false;
  /** The current file was found removed or cut short: recreate before the next write. */
  private lost: 'removed' | 'truncated' | undefined;
  /** Seq of the newest checkpoint record (or, from the start, the tail found at open): nothing new to sign while the chain ends there. */
  private checkpointedSeq = 0;
  private signedSeq: number | null = null;
  /** This run of the daemon (named in its checkpoints). */
  readonly instance = randomUUID();
  /** What was moved aside at open: torn or malformed last lines (`<file>.torn`). */
  readonly recovered: { tornBytes: number; movedAside: MovedAside[]; gap?: HeadProblem } = { tornBytes: 0, movedAside: [] };

  private constructor(private readonly o: Required<Omit<AuditLogOptions, 'health' | 'signer' | 'logger' | 'onPruned'>> & Pick<AuditLogOptions, 'health' | 'signer' | 'logger' | 'onPruned'>) {
    this.scheduler = new CommitScheduler(
      o.commitWindowMs,
      () => ({ any: this.queue.length > 0, urgent: this.queue.some((q) => q.urgent) }),
      () => this.flush(),
    );
  }

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const log = new AuditLog({ maxFileBytes: 16 * 1024 * 1024, retentionFiles: 30, commitWindowMs: 0, retryMs: DEFAULT_RETRY_MS, checkpointIntervalMs: 300_000, repair: false, ...opts });
    const created = await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) opts.logger?.info({ dir: opts.dir, event: 'audit.dir_created' }, `audit directory ${opts.dir} did not exist: created (0700)`);
    await log.recover();
    if (opts.signer) {
      await log.atomicWrite(join(opts.dir, 'audit.pub'), opts.signer.publicPem);
      log.checkpointTimer = setInterval(() => void log.checkpoint().catch(() => undefined), log.o.checkpointIntervalMs);
      log.checkpointTimer.unref();
    }
    return log;
  }

  get head(): { seq: number; hash: string; file: string } {
    return { seq: this.seq, hash: this.prev, file: this.file };
  }

  /** Seq of the record the newest checkpoint of this run vouches for (null before the first). */
  get lastCheckpointSeq(): number | null {
    return this.signedSeq;
  }

  /** Records appended and not yet durable (held while writing fails). */
  get held(): number {
    return this.queue.length;
  }

  /** Resolves once the record is durable; `urgent: false` lets it wait up to the commit window for others. */
  append(record: RecordSource, o: { urgent?: boolean } = {}): Promise<Appended> {
    return new Promise((resolve, reject) => {
      const urgent = o.urgent !== false;
      this.queue.push({ record, urgent, resolve, reject });
      this.scheduler.request(urgent);
    });
  }

  /** Append a signed checkpoint of the chain head, if there is a signer and records since the last one. */
  async checkpoint(): Promise<void> {
    const signer = this.o.signer;
    if (!signer || this.seq === this.checkpointedSeq) return;
    await this.append(this.checkpointOf(signer));
  }

  /** A checkpoint record, signed at commit over the record it lands after. */
  private checkpointOf(signer: CheckpointSigner): RecordSource {
    return ({ seq, prev, time }) => signer.record({ seq: seq - 1, hash: prev, time: time.toISOString(), instance: this.instance });
  }

  async close(): Promise<void> {
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    // Closing first: a commit that fails from here on rejects (its records stay in the journal) instead of retrying.
    this.closing = true;
    await this.checkpoint().catch(() => undefined);
    while (this.scheduler.busy) await this.scheduler.busy;
    if (this.headTimer) {
      clearTimeout(this.headTimer);
      this.headTimer = undefined;
    }
    await this.headWrite;
    await this.writeHead().catch(() => undefined);
    await this.fh?.close();
    this.fh = undefined;
  }

  /**
   * Find the chain head (moving a torn or malformed tail aside) and check it against `audit.head`:
   * a disagreement refuses to open, or with `repair` is recorded as a gap record.
   */
  private async recover(): Promise<void> {
    const tail = await chainTail(this.o.dir);
    this.recovered.movedAside = tail.movedAside;
    this.recovered.tornBytes = tail.movedAside.reduce((n, m) => n + m.bytes, 0);
    this.seq = tail.seq;
    this.prev = tail.hash;
    this.checkpointedSeq = tail.seq;
    if (tail.file) {
      const m = FILE_RE.exec(tail.file) as RegExpExecArray;
      this.day = m[1] as string;
      this.index = Number(m[2]);
      this.file = join(this.o.dir, tail.file);
      this.size = tail.size;
    }
    const problem = await headProblem(this.o.dir, tail, await readChainPoint(this.o.dir, 'audit.head').catch(() => ({ seq: -1, hash: '' })), await readChainPoint(this.o.dir, 'audit.anchor'));
    if (!problem) {
      // A new log gets its head at once: a head missing later, with records present, is then a loss.
      if (tail.seq === 0) await this.writeHead();
      return;
    }
    if (!this.o.repair) throw new AuditHeadMismatchError(this.o.dir, problem);
    this.recovered.gap = problem;
    await this.appendGap(problem);
  }

  /** A chained gap record (and a signed checkpoint over it when there is a signer), durable before this returns. */
  private async appendGap(p: HeadProblem): Promise<void> {
    // Records known lost keep their seqs: the gap record takes the seq after them.
    if (p.lost) this.seq = p.lost.to_seq;
    await this.append({ type: 'gap', reason: p.reason, detail: p.detail, ...(p.lost ? { lost: p.lost } : {}), ...(p.expected ? { expected: p.expected } : {}), found: p.found });
    await this.checkpoint();
    await this.writeHead();
  }

  private async flush(): Promise<void> {
    if (this.lost && !(await this.retry(() => this.recreate(this.lost as 'removed' | 'truncated')))) return;
    this.lost = undefined;
    const batch = this.queue;
    this.queue = [];
    let done = 0;
    try {
      const now = this.o.clock();
      const day = dayOf(now);
      while (done < batch.length) {
        if (!this.fh && this.file && day === this.day && this.size < this.o.maxFileBytes) {
          // After a restart or a failed commit: keep appending to the current file while it has room.
          this.fh = await open(this.file, 'a', 0o600);
        }
        if (!this.fh || day !== this.day) await this.rotate(day);
        const lines: string[] = [];
        const hashes: string[] = [];
        let bytes = 0;
        for (let i = done; i < batch.length; i++) {
          const seq = this.seq + lines.length + 1;
          const prev = hashes.at(-1) ?? this.prev;
          const p = batch[i] as Pending;
          const line = serialise(seq, now, prev, typeof p.record === 'function' ? p.record({ seq, prev, time: now }) : p.record);
          const len = Buffer.byteLength(line) + 1;
          if (this.size + bytes + len > this.o.maxFileBytes && this.size + bytes > 0) break;
          lines.push(line);
          hashes.push(lineHash(line));
          bytes += len;
        }
        if (lines.length === 0) {
          await this.rotate(day);
          continue;
        }
        this.size += await commitAppend(this.fh as FileHandle, this.file, this.size, linesToBytes(lines, bytes));
        // Durable: only now does the chain advance.
        for (let i = 0; i < hashes.length; i++) {
          const hash = hashes[i] as string;
          this.seq += 1;
          this.prev = hash;
          (batch[done++] as Pending).resolve({ seq: this.seq, hash, line: lines[i] as string });
          if (typeof (batch[done - 1] as Pending).record === 'function') {
            this.checkpointedSeq = this.seq;
            this.signedSeq = this.seq - 1;
          }
        }
      }
      this.o.health?.ok('audit', batch.length);
      this.scheduleHead();
    } catch (e) {
      await this.failed(e, batch.slice(done));
    }
  }

  /** Hold what was not committed (in order, ahead of later appends) and retry; reject it only when closing. */
  private async failed(e: unknown, rest: Pending[]): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    if (this.closing) {
      for (const p of rest) p.reject(e);
      return;
    }
    this.queue = [...rest, ...this.queue];
    // A lost file is dealt with first thing in the next commit, at once (retried like a write if that fails).
    if (e instanceof FileRemovedError) this.lost = e.how;
    else await this.retry(() => Promise.reject(e));
  }

  /** Run `f`; if it fails, report it and wait the retry interval. True when it worked. */
  private async retry(f: () => Promise<void>): Promise<boolean> {
    try {
      await f();
      return true;
    } catch (e) {
      if (this.closing) {
        for (const p of this.queue.splice(0)) p.reject(e);
        return false;
      }
      this.o.health?.fail('audit', e, this.queue.length);
      await new Promise((r) => setTimeout(r, this.o.retryMs));
      return false;
    }
  }

  /**
   * The current file (or the whole directory) was removed, or the file cut short, while the daemon
   * ran: recreate the directory, continue the chain from the newest record that survives (in a new
   * file), and put a gap record for the lost ones ahead of the held records.
   */
  private async recreate(how: 'removed' | 'truncated'): Promise<void> {
    await mkdir(this.o.dir, { recursive: true, mode: 0o700 });
    const tail = await chainTail(this.o.dir);
    const files = await auditFiles(this.o.dir);
    const lost = tail.seq < this.seq ? { from_seq: tail.seq + 1, to_seq: this.seq } : undefined;
    const detail = `${this.file} was ${how} while the daemon ran${files.length === 0 ? ' (with the whole audit directory)' : ''}: ${lost ? `records ${lost.from_seq}..${lost.to_seq} are gone` : 'no record was lost'}`;
    this.o.logger?.error({ dir: this.o.dir, lost, event: 'audit.recreated' }, `audit log ${how} while running: continued in a new file; ${detail}`);
    // The next record goes to a new file after every surviving one, chained to the newest surviving record.
    this.prev = tail.hash;
    this.index = Math.max(this.index, ...files.map((f) => FILE_RE.exec(f) as RegExpExecArray).filter((m) => m[1] === this.day).map((m) => Number(m[2])));
    this.file = '';
    const gap: Pending = { record: { type: 'gap', reason: how === 'removed' ? 'files_removed' : 'truncated', detail, ...(lost ? { lost } : {}), found: { seq: tail.seq, hash: tail.hash } }, urgent: true, resolve: () => undefined, reject: () => undefined };
    this.queue.unshift(gap);
    if (this.o.signer) this.queue.splice(1, 0, { ...gap, record: this.checkpointOf(this.o.signer) });
  }

  private async rotate(day: string): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
    this.index = day === this.day ? this.index + 1 : 1;
    this.day = day;
    this.file = join(this.o.dir, fileName(day, this.index));
    this.size = 0;
    this.fh = await open(this.file, 'a', 0o600);
    this.size = (await stat(this.file)).size;
    await this.prune();
  }

  /** Retention: drop the oldest files, recording the chain head they end at in `audit.anchor`. */
  private async prune(): Promise<void> {
    const files = await auditFiles(this.o.dir);
    const excess = files.length - this.o.retentionFiles;
    for (let i = 0; i < excess; i++) {
      const f = join(this.o.dir, files[i] as string);
      const text = (await readFile(f, 'utf8')).replace(/\n$/, '');
      const last = text.slice(text.lastIndexOf('\n') + 1);
      if (last) {
        const anchor = { file: files[i], seq: (JSON.parse(last) as { seq: number }).seq, hash: lineHash(last) };
        await this.atomicWrite(join(this.o.dir, 'audit.anchor'), JSON.stringify(anchor));
      }
      await rm(f);
    }
    if (excess > 0) this.o.onPruned?.();
  }

  /**
   * `audit.head` trails the durable records by at most HEAD_INTERVAL_MS (rewriting it after every
   * group commit cost more than the records themselves under load). A head that lags is fine for
   * `tresor-verify audit`; one ahead of the files, or with another hash at its seq, is a break.
   */
  private scheduleHead(): void {
    if (this.headTimer) return;
    this.headTimer = setTimeout(() => {
      this.headTimer = undefined;
      this.headWrite = this.headWrite.then(() => this.writeHead()).catch(() => undefined);
    }, HEAD_INTERVAL_MS);
    this.headTimer.unref();
  }

  private writeHead(): Promise<void> {
    return this.atomicWrite(join(this.o.dir, 'audit.head'), JSON.stringify({ ...this.head, file: this.file ? this.file.slice(this.o.dir.length + 1) : '' }));
  }

  private async atomicWrite(path: string, text: string): Promise<void> {
    const tmp = `${path}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, path);
  }
}
