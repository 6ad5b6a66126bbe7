import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../types.js';
import { appendSync, CommitScheduler } from '../util/appender.js';
import { dayOf, FILE_RE, fileName, GENESIS, lineHash, serialise } from './format.js';

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
}

interface Pending {
  record: Record<string, unknown>;
  urgent: boolean;
  resolve: (r: { seq: number; hash: string }) => void;
  reject: (e: unknown) => void;
}

/**
 * Append-only, hash-chained JSON Lines audit log. Appends made within one tick (or, when not
 * urgent, within the commit window) are written with one write and one fdatasync (group commit); `append` resolves once its record is durable.
 * Files are 0600 in a 0700 directory; `audit.head` holds the last seq and hash so that a
 * truncated tail is detectable.
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
  private headWrite: Promise<void> = Promise.resolve();
  /** Torn last line found at open (a crash mid-write), moved aside to `<file>.torn`. */
  readonly recovered: { tornBytes: number } = { tornBytes: 0 };

  private constructor(private readonly o: Required<AuditLogOptions>) {
    this.scheduler = new CommitScheduler(
      o.commitWindowMs,
      () => ({ any: this.queue.length > 0, urgent: this.queue.some((q) => q.urgent) }),
      () => this.flush(),
    );
  }

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const log = new AuditLog({ maxFileBytes: 16 * 1024 * 1024, retentionFiles: 30, commitWindowMs: 0, ...opts });
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    await log.recover();
    return log;
  }

  get head(): { seq: number; hash: string; file: string } {
    return { seq: this.seq, hash: this.prev, file: this.file };
  }

  /** Resolves once the record is durable; `urgent: false` lets it wait up to the commit window for others. */
  append(record: Record<string, unknown>, o: { urgent?: boolean } = {}): Promise<{ seq: number; hash: string }> {
    return new Promise((resolve, reject) => {
      const urgent = o.urgent !== false;
      this.queue.push({ record, urgent, resolve, reject });
      this.scheduler.request(urgent);
    });
  }

  async close(): Promise<void> {
    while (this.scheduler.busy) await this.scheduler.busy;
    if (this.headTimer) {
      clearTimeout(this.headTimer);
      this.headTimer = undefined;
    }
    await this.headWrite;
    await this.writeHead();
    await this.fh?.close();
    this.fh = undefined;
  }

  private async files(): Promise<string[]> {
    return (await readdir(this.o.dir)).filter((f) => FILE_RE.test(f)).sort();
  }

  /** Find the chain head in the newest file; move a torn last line aside. */
  private async recover(): Promise<void> {
    const files = await this.files();
    const last = files.at(-1);
    if (!last) {
      const anchor = await readFile(join(this.o.dir, 'audit.anchor'), 'utf8').catch(() => undefined);
      if (anchor) ({ seq: this.seq, hash: this.prev } = JSON.parse(anchor) as { seq: number; hash: string });
      return;
    }
    const m = FILE_RE.exec(last) as RegExpExecArray;
    this.day = m[1] as string;
    this.index = Number(m[2]);
    this.file = join(this.o.dir, last);
    let data = await readFile(this.file);
    const end = data.lastIndexOf(0x0a) + 1;
    if (end < data.length) {
      this.recovered.tornBytes = data.length - end;
      await writeFile(`${this.file}.torn`, data.subarray(end), { mode: 0o600 });
      const fh = await open(this.file, 'r+');
      await fh.truncate(end);
      await fh.sync();
      await fh.close();
      data = data.subarray(0, end);
    }
    this.size = data.length;
    const body = data.toString('utf8').replace(/\n$/, '');
    const lastLine = body.slice(body.lastIndexOf('\n') + 1);
    if (lastLine) {
      this.seq = (JSON.parse(lastLine) as { seq: number }).seq;
      this.prev = lineHash(lastLine);
    } else {
      const previous = files.at(-2);
      if (previous) {
        const p = (await readFile(join(this.o.dir, previous), 'utf8')).replace(/\n$/, '');
        const l = p.slice(p.lastIndexOf('\n') + 1);
        this.seq = (JSON.parse(l) as { seq: number }).seq;
        this.prev = lineHash(l);
      }
    }
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    try {
      const now = this.o.clock();
      const lines: string[] = [];
      const results: { seq: number; hash: string }[] = [];
      let bytes = 0;
      const day = dayOf(now);
      const write = async () => {
        if (lines.length === 0) return;
        const text = `${lines.join('\n')}\n`;
        this.size += appendSync(this.fh as FileHandle, text);
        lines.length = 0;
        bytes = 0;
      };
      for (const p of batch) {
        const line = serialise(this.seq + 1, now, this.prev, p.record);
        const len = Buffer.byteLength(line) + 1;
        // After a restart, keep appending to today's newest file while it has room.
        if (!this.fh && this.file && day === this.day && this.size + bytes + len <= this.o.maxFileBytes) this.fh = await open(this.file, 'a', 0o600);
        if (!this.fh || day !== this.day || (this.size + bytes + len > this.o.maxFileBytes && this.size + bytes > 0)) {
          await write();
          await this.rotate(day);
        }
        lines.push(line);
        bytes += len;
        this.seq += 1;
        this.prev = lineHash(line);
        results.push({ seq: this.seq, hash: this.prev });
      }
      await write();
      await this.fh?.datasync();
      this.scheduleHead();
      batch.forEach((p, i) => p.resolve(results[i] as { seq: number; hash: string }));
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }

  private async rotate(day: string): Promise<void> {
    await this.fh?.datasync();
    await this.fh?.close();
    this.index = day === this.day ? this.index + 1 : 1;
    this.day = day;
    this.file = join(this.o.dir, fileName(day, this.index));
    this.fh = await open(this.file, 'a', 0o600);
    this.size = (await stat(this.file)).size;
    await this.prune();
  }

  /** Retention: drop the oldest files, recording the chain head they end at in `audit.anchor`. */
  private async prune(): Promise<void> {
    const files = await this.files();
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
    return this.atomicWrite(join(this.o.dir, 'audit.head'), JSON.stringify(this.head));
  }

  private async atomicWrite(path: string, text: string): Promise<void> {
    const tmp = `${path}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, path);
  }
}
